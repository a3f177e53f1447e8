"""Word-level tokenizer that keeps what a reader needs, in any script, and the vocabulary that numbers its tokens.

`words` mode keeps case, makes each punctuation mark its own token, keeps contractions, hyphenated words,
numbers, URLs and emoji whole, and turns each line break into a "\\n" token. Scripts written without spaces
(Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan) are cut one extended grapheme cluster per token, and no token
boundary ever falls inside a cluster (a letter and its marks, an emoji sequence, a flag). Spacing is exact: join()
spaces tokens by rules (none before a comma, none between Chinese characters, ...), and split() adds a SPACE or
GLUE token wherever the text departs from them, so join(split(t)) == normalize(t) for every text.
`whitespace` mode is for pre-tokenized corpora such as PTB: split on spaces, one "\\n" per line.
Vocabularies saved before segmentation 2 keep the rules they were made with (segmentation 1).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal
from unicodedata import category

import regex

NEWLINE = "\n"
PAD = "\x00pad"  # id 0: fills windows shorter than the model's context; never generated
UNK = "\x00unk"  # id 1: words outside the vocabulary; never generated
SPECIALS = (PAD, UNK)
SPACE = " "  # a space where the spacing rules would put none (say between Chinese and an English word)
GLUE = "\x00glue"  # no space where the spacing rules would put one ("a,b"); never shown
DEPARTURES = (SPACE, GLUE)  # where a text's spacing departs from the rules: generated like any token
SEGMENTATION = 2  # the segmentation new vocabularies are made with; vocab.json without one: 1, the rules before

# Scripts written without spaces, cut one extended grapheme cluster per token: their letters, and the CJK
# punctuation, kana marks, strokes, enclosed and compatibility forms and full-width punctuation used with them.
_NOSPACE = (
    r"\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Myanmar}\p{sc=Tibetan}"
    r"\u2FF0-\u2FFF\u3000-\u303F\u3099-\u309C\u30A0\u30FB\u30FC\u3190-\u319F\u31C0-\u31EF\u3200-\u33FF"
    r"\uFE30-\uFE4F\uFF01-\uFF9F"
)
_EXTEND = r"\p{gcb=Extend}\p{gcb=SpacingMark}\p{gcb=ZWJ}"  # what joins the character before it (UAX #29)
_NOSPACE_BASE = rf"[[{_NOSPACE}]--[{_EXTEND}]]"  # a character of those scripts that starts a cluster
_PREPEND = r"\p{gcb=Prepend}"  # joins the character after it
# A word is made of whole clusters: letters, digits and marks of scripts written with spaces, whatever joins them.
_WORD_UNIT = rf"(?:(?=[[\w{_EXTEND}]--{_NOSPACE_BASE}])\X)"
_TOKEN = regex.compile(
    rf"""(?V1x)
    (?P<url>(?:https?://|www\.)[^\s<>"{_NOSPACE_BASE}]*[^\s<>".,;:!?)\]'’”{_NOSPACE_BASE}{_PREPEND}])
  | (?P<newline>\n)
  | (?P<emoticon>(?<!\S)[:;=][-']?[()\[\]DPpO/|*3]+(?=\s|$))
  | (?P<number>\d+(?:[.,:]\d+)+(?:(?=[[\w{_EXTEND}]--[\d_{_NOSPACE_BASE}]])\X)*(?![{_EXTEND}]))
  | (?P<word>{_WORD_UNIT}+(?:[-'’]{_WORD_UNIT}+)*)
  | (?P<nospace>(?={_NOSPACE_BASE})\X)
  | (?P<run>(?P<mark>[-.!?~*=_])(?P=mark)+(?![{_EXTEND}]))
  | (?P<other>(?=\S)\X)
    """
)
_STARTS_NOSPACE = regex.compile(rf"(?V1){_NOSPACE_BASE}")
_MARKED_SCRIPTS = regex.compile(r"[\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Myanmar}\p{sc=Tibetan}]")  # marks follow
_ENDS_IN_WORD = regex.compile(r"\w\Z")
_SPACES = regex.compile(r"(?V1)[[\t\p{Zs}]--[\u3000]]+")  # every space but the ideographic one, a token of its own
_CONTROLS = regex.compile(r"(?V1)[\p{C}--[\n\t\u200d\ufe0f]]+")  # ZWJ and VS16 hold emoji sequences together
_ASCII_SPACES = re.compile(r"[ \t]+")  # the same on text of ASCII only, faster
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")
_UNATTACHED = regex.compile(  # marks with nothing to join: after a space or a line break, or before a space
    rf"(?V1)(?:^|(?<=\s))[{_EXTEND}]+|{_PREPEND}+(?=\s|\Z)"
)

# Spacing rules for detokenizing: no space before CLOSE marks, none after OPEN marks.
_CLOSE = set(".,;:!?%)]}…”’")
_OPEN = set("([{“‘$#¿¡")
_END_RUN = set(".!?")  # "...", "!!", "?!?" close up like a single mark
_QUOTES = {'"', "'"}  # straight quotes open and close by turns


def normalize(text: str) -> str:
    """The text as the tokenizer reads it: NFC, "\\n" for every line break, no control characters, no mark
    left without a letter to join, and each run of spaces one space (none at either end of a line)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        text = _ASCII_SPACES.sub(" ", _ASCII_CONTROLS.sub("", text))
    else:
        text = _CONTROLS.sub("", text.replace("\u2028", "\n").replace("\u2029", "\n"))
        text = _SPACES.sub(" ", _UNATTACHED.sub("", unicodedata.normalize("NFC", text)))
    return re.sub(r" ?\n ?", "\n", text).strip(" ")


def tokenize_words(text: str) -> list[str]:
    """The tokens of `text`: words, marks, line breaks, one token per cluster in scripts without spaces, and a
    SPACE or GLUE token wherever the text's spacing is not the one join() would put."""
    return _split(normalize(text))[0]


def _split(
    text: str, prev: str | None = None, quote_open: bool = False, space_before: bool = False
) -> tuple[list[str], str | None, bool]:
    """(tokens, last token, whether a quote is open) of normalized `text` that follows `prev` (and a space)."""
    tokens: list[str] = []
    append = tokens.append
    end = -1 if space_before else 0
    prev_kind = ""  # "word" and "nospace" pairs are spaced without asking _space: most pairs, in any script
    for m in _TOKEN_ASCII.finditer(text) if text.isascii() else _matches(text):
        tok = m.group()
        if tok == NEWLINE:
            prev, quote_open, prev_kind = NEWLINE, False, ""
            append(tok)
            end = m.end()
            continue
        start, stop = m.span()
        kind = m.lastgroup or ""
        if prev is not None and prev != NEWLINE:
            spaced = start != end
            if kind == prev_kind == "word":
                predicted = True
            elif kind == prev_kind == "nospace" and not prev.endswith("\u200d"):
                predicted = False
            else:
                predicted = _space(prev, tok, quote_open)
            if spaced != predicted:
                append(SPACE if spaced else GLUE)
        if tok in _QUOTES:
            quote_open = not quote_open
        prev, prev_kind, end = tok, kind, stop
        append(tok)
    return tokens, prev, quote_open


def _matches(text: str) -> Iterator[re.Match[str] | regex.Match[str]]:
    """_TOKEN's matches in `text`; its lines of ASCII only are read by the equal and faster _TOKEN_ASCII."""
    if text.isascii():
        yield from _TOKEN_ASCII.finditer(text)
        return
    pos, n = 0, len(text)
    while (found := _NON_ASCII.search(text, pos)) is not None:
        start = max(pos, text.rfind("\n", pos, found.start()) + 1)
        end = text.find("\n", found.end())
        end = n if end < 0 else end + 1
        yield from _TOKEN_ASCII.finditer(text, pos, start)
        yield from _TOKEN.finditer(text, start, end)
        pos = end
    yield from _TOKEN_ASCII.finditer(text, pos)


def _segments(text: str) -> list[str]:
    """The tokens of `text` without departures: what the spacing rules are checked against."""
    return [m.group() for m in _matches(text)]


def _nospace(tok: str) -> bool:
    return _STARTS_NOSPACE.match(tok) is not None


@lru_cache(maxsize=1 << 17)
def _space(prev: str, tok: str, quote_open: bool) -> bool:
    """Whether join() puts a space between `prev` and `tok` (neither a line break)."""
    if _nospace(tok) or _nospace(prev):
        if _nospace(tok) and _nospace(prev) and not prev.endswith("\u200d"):
            return False  # two clusters of scripts without spaces never merge
        space = False
    elif tok in _QUOTES:
        space = not quote_open  # an opening quote takes a space, a closing one does not
    elif prev in _QUOTES:
        space = not quote_open  # after an opening quote no space; after a closing one, a space
    else:
        space = not (tok in _CLOSE or set(tok) <= _END_RUN or prev in _OPEN)
    return space or _segments(prev + tok) != [prev, tok]  # a space where gluing would merge the two


@dataclass
class _Spacer:
    """What each token adds to the text: the one state machine behind join() and Continuation.add."""

    prev: str | None = None  # the last token that is not a departure
    quote_open: bool = False
    pending: str | None = None  # a departure token waiting for the next token

    def piece(self, tok: str) -> str:
        if tok in DEPARTURES:
            self.pending = tok
            return ""
        prev, pending, self.pending, self.prev = self.prev, self.pending, None, tok
        if tok == NEWLINE:
            self.quote_open = False
            return tok
        if prev is None or prev == NEWLINE:
            space = False
        elif pending is not None:
            space = pending == SPACE
        else:
            space = _space(prev, tok, self.quote_open)
        if tok in _QUOTES:
            self.quote_open = not self.quote_open
        return " " + tok if space else tok


def detokenize_words(tokens: Iterable[str], prev: str | None = None, quote_open: bool = False) -> str:
    """Join tokens into text: join(split(t)) is normalize(t). `prev` is the token before them, for the first space."""
    spacer = _Spacer(prev, quote_open)
    return "".join([spacer.piece(tok) for tok in tokens])


def tokenize_whitespace(text: str) -> list[str]:
    tokens: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's last newline closes its last line
    for line in lines:
        tokens.extend(line.split())
        tokens.append(NEWLINE)
    return tokens


def count_tokens(text: str, mode: str = "words") -> int:
    """How many tokens training would count in `text`."""
    return len(tokenize_whitespace(text) if mode == "whitespace" else tokenize_words(text))


_EMOJI_TAIL = "\ufe0f\U0001f3fb-\U0001f3ff"  # variation selector, skin tones


# --- segmentation 1: bundles made before scripts without spaces were cut by cluster keep reading text this way
_TOKEN_V1 = re.compile(
    r"""
    (?P<url>(?:https?://|www\.)[^\s<>"]*[^\s<>".,;:!?)\]'’”])
  | (?P<newline>\n)
  | (?P<emoticon>(?<!\S)[:;=][-']?[()\[\]DPpO/|*3]+(?=\s|$))
  | (?P<number>\d+(?:[.,:]\d+)+[^\W\d_]*)
  | (?P<word>\w+(?:[-'’]\w+)*)
  | (?P<run>(?P<mark>[-.!?~*=_])(?P=mark)+)
  | (?P<symbol>[^\w\s]["""
    + _EMOJI_TAIL
    + r"""]*(?:\u200d[^\w\s]["""
    + _EMOJI_TAIL
    + r"""]*)*)
    """,
    re.VERBOSE,
)


_TOKEN_ASCII = _TOKEN_V1  # on text of ASCII only it finds what _TOKEN finds (a test checks), three times as fast
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _normalize_v1(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c == "\n" or c == "\t" or category(c)[0] != "C" or c in "\u200d\ufe0f")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r" ?\n ?", "\n", text).strip(" ")


def _tokenize_v1(text: str) -> list[str]:
    return [m.group() for m in _TOKEN_V1.finditer(_normalize_v1(text))]


@lru_cache(maxsize=65536)
def _glues_v1(prev: str, cur: str) -> bool:
    return _tokenize_v1(prev + cur) == [prev, cur]


def _detokenize_v1(tokens: Iterable[str], prev: str | None = None, quote_open: bool = False) -> str:
    out: list[str] = []
    for tok in tokens:
        if prev is None or prev == NEWLINE or tok == NEWLINE:
            space = False
        elif tok in _QUOTES:
            space = not quote_open
        elif prev in _QUOTES:
            space = not quote_open
        else:
            space = not (tok in _CLOSE or set(tok) <= _END_RUN or prev in _OPEN)
        if not space and prev not in (None, NEWLINE) and tok != NEWLINE and not _glues_v1(prev, tok):
            space = True
        if tok in _QUOTES:
            quote_open = not quote_open
        out.append((" " if space else "") + tok)
        prev = tok
    return "".join(out)


Mode = Literal["words", "whitespace"]


@dataclass
class Tokenizer:
    """Splits text into tokens and numbers them with its vocabulary."""

    mode: Mode = "words"
    vocab: list[str] = field(default_factory=lambda: list(SPECIALS))  # id -> token
    segmentation: int = SEGMENTATION  # how `words` mode cuts text: 2 now, 1 for vocabularies saved before it

    def __post_init__(self):
        if self.mode not in ("words", "whitespace"):
            raise ValueError(f"unknown tokenizer mode {self.mode!r}: use 'words' or 'whitespace'")
        if self.segmentation not in (1, 2):
            raise ValueError(f"unknown segmentation {self.segmentation!r}: this Continuo knows 1 and 2")
        self.index = {tok: i for i, tok in enumerate(self.vocab)}

    @property
    def _v1(self) -> bool:
        return self.mode == "words" and self.segmentation == 1

    # --- text <-> tokens
    def split(self, text: str) -> list[str]:
        if self.mode == "whitespace":
            return tokenize_whitespace(text)
        return _tokenize_v1(text) if self.segmentation == 1 else tokenize_words(text)

    def split_parts(self, parts: Iterable[str]) -> Iterator[list[str]]:
        """The tokens of each of the consecutive parts of one text, as split() of the whole would give them,
        for parts cut after a line break, after a space, or between two characters of scripts without spaces
        (core.encoding.pieces)."""
        prev: str | None = None
        quote_open = space_before = False
        for part in parts:
            if self.mode == "whitespace" or self.segmentation == 1:
                yield self.split(part)
                continue
            tokens, prev, quote_open = _split(normalize(part), prev, quote_open, space_before)
            space_before = part.endswith(" ") or space_before and not tokens  # pieces are cut after a space
            yield tokens

    def join(self, tokens: Iterable[str], prev: str | None = None, quote_open: bool = False) -> str:
        """Text of `tokens`; `prev` is the token before them and `quote_open` whether a quote is open there."""
        if self.mode == "whitespace":
            out: list[str] = []
            first = True
            for tok in tokens:
                glue = first and (prev is None or prev == NEWLINE) or tok == NEWLINE or out and out[-1] == NEWLINE
                out.append(tok if glue else " " + tok)
                first = False
            return "".join(out)
        if self.segmentation == 1:
            return _detokenize_v1(tokens, prev, quote_open)
        return detokenize_words(tokens, prev, quote_open)

    def continuation(self, prompt: str, prompt_tokens: list[str] | None = None) -> Continuation:
        """How text that continues `prompt` is spaced (`prompt_tokens`: its tokens, when already split)."""
        tokens = self.split(prompt) if prompt_tokens is None else prompt_tokens
        after_space = prompt[-1:].isspace()
        if self.mode == "whitespace" or self.segmentation == 1:
            return Continuation(self, tokens[-1] if tokens else None, tokens.count('"') % 2 == 1, after_space)
        spacer = _Spacer()
        for tok in tokens:
            spacer.piece(tok)
        return Continuation(self, spacer.prev, spacer.quote_open, after_space, spacer.pending)

    def unfinished_word(self, text: str, tokens: list[str] | None = None) -> str:
        """The last word of `text` while it is still being typed (nothing after it yet), else "".

        In scripts written without spaces every character is a whole token, so none is unfinished, except
        in those whose letters take vowel and tone marks after them (Thai, Lao, Khmer, Myanmar, Tibetan)."""
        tokens = self.split(text) if tokens is None else tokens
        if self.mode == "whitespace" or self.segmentation == 1:
            return tokens[-1] if tokens and text[-1:].isalnum() and tokens[-1][-1:].isalnum() else ""
        if not tokens or not _ENDS_IN_WORD.search(text) or not _ENDS_IN_WORD.search(tokens[-1]):
            return ""
        last = tokens[-1]
        return last if not _nospace(last) or _MARKED_SCRIPTS.match(last) else ""

    def leading(self, text: str) -> str:
        """The start of `text` up to the end of its first token, with the spaces and line breaks before it."""
        start = len(text) - len(text.lstrip())
        match = (_TOKEN_V1 if self._v1 else _TOKEN).match(text, start)
        if self.mode == "whitespace" or match is None:
            end = start + len(text[start:].split(maxsplit=1)[0]) if text[start:] else start
            return text[:end]
        return text[: match.end()]

    def opening(self, text: str, n: int) -> str:
        """The text of `text`'s first `n` tokens (line breaks and departures not counted), or "" if it has fewer."""
        tokens = self.split(text)
        ends = [i for i, tok in enumerate(tokens) if tok not in DEPARTURES and tok != NEWLINE]
        return self.join(tokens[: ends[n - 1] + 1]) if n > 0 and len(ends) >= n else ""

    def unseen_script(self, text: str) -> str | None:
        """The name of the script of `text`'s first letter when no token of the vocabulary has a letter of it."""
        letter = regex.search(r"\p{L}", text)
        if letter is None:
            return None
        name = script_name(letter.group())
        pattern = regex.compile(rf"\p{{sc={name}}}") if name in _SCRIPT_NAMES else None
        if pattern is None:
            return None
        return None if pattern.search("\n".join(self.vocab)) else _SCRIPT_NAMES[name]

    # --- tokens <-> ids
    def encode(self, text_or_tokens: str | list[str]) -> list[int]:
        tokens = self.split(text_or_tokens) if isinstance(text_or_tokens, str) else text_or_tokens
        return [self.index.get(t, 1) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[i] for i in ids]

    def __len__(self) -> int:
        return len(self.vocab)

    @classmethod
    def fit(
        cls, tokens: Iterable[str], mode: Mode = "words", min_count: int = 1, max_size: int | None = None
    ) -> Tokenizer:
        """Vocabulary of the tokens seen at least `min_count` times, most frequent first.

        SPACE and GLUE are kept however rare: as unknown tokens they would stand for no spacing at all."""
        counts = Counter(tokens)
        ranked = sorted(
            (t for t, c in counts.items() if (c >= min_count or t in DEPARTURES) and t not in SPECIALS),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(mode=mode, vocab=[*SPECIALS, *ranked])

    # --- persistence
    def to_json(self) -> str:
        return json.dumps(
            {"mode": self.mode, "segmentation": self.segmentation, "vocab": self.vocab}, ensure_ascii=False
        )

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        return cls(mode=data["mode"], vocab=data["vocab"], segmentation=data.get("segmentation", 1))


# Scripts a seed may be written in, by their Unicode property name -> how a message names them.
_SCRIPT_NAMES = {
    "Latin": "Latin",
    "Greek": "Greek",
    "Cyrillic": "Cyrillic",
    "Armenian": "Armenian",
    "Hebrew": "Hebrew",
    "Arabic": "Arabic",
    "Syriac": "Syriac",
    "Thaana": "Thaana",
    "Devanagari": "Devanagari",
    "Bengali": "Bengali",
    "Gurmukhi": "Gurmukhi",
    "Gujarati": "Gujarati",
    "Oriya": "Oriya",
    "Tamil": "Tamil",
    "Telugu": "Telugu",
    "Kannada": "Kannada",
    "Malayalam": "Malayalam",
    "Sinhala": "Sinhala",
    "Thai": "Thai",
    "Lao": "Lao",
    "Tibetan": "Tibetan",
    "Myanmar": "Myanmar",
    "Georgian": "Georgian",
    "Hangul": "Korean (Hangul)",
    "Ethiopic": "Ethiopic",
    "Cherokee": "Cherokee",
    "Khmer": "Khmer",
    "Mongolian": "Mongolian",
    "Hiragana": "Japanese (Hiragana)",
    "Katakana": "Japanese (Katakana)",
    "Han": "Chinese (Han)",
    "Tifinagh": "Tifinagh",
}


def script_name(char: str) -> str:
    """The Unicode script of `char` among _SCRIPT_NAMES' ("Han", "Thai", ...), else "Common"."""
    for name in _SCRIPT_NAMES:
        if regex.match(rf"\p{{sc={name}}}", char):
            return name
    return "Common"


@dataclass
class Continuation:
    """Where text that continues a prompt starts: after the prompt's last token, inside a quote it left open, and
    with no space of its own when the prompt already ends with one. The one rule for every front-end."""

    tokenizer: Tokenizer
    prev: str | None  # the last token so far (not a departure)
    quote_open: bool  # a straight quote is open
    after_space: bool  # the prompt ends with whitespace, so the continuation starts without a space
    pending: str | None = None  # a departure token (SPACE or GLUE) not yet followed by a token

    def text(self, tokens: Iterable[str]) -> str:
        """What to append to the prompt so that it reads on with `tokens`."""
        tok = self.tokenizer
        if tok.mode == "whitespace" or tok.segmentation == 1:
            text = tok.join(tokens, prev=self.prev, quote_open=self.quote_open)
        else:
            spacer = _Spacer(self.prev, self.quote_open, self.pending)
            text = "".join([spacer.piece(t) for t in tokens])
        return text.lstrip(" ") if self.after_space else text

    def add(self, token: str) -> str:
        """The next piece, for tokens that come one at a time: the pieces add up to text() of them all."""
        piece = self.text([token])
        tok = self.tokenizer
        if tok.mode == "words" and tok.segmentation != 1:
            spacer = _Spacer(self.prev, self.quote_open, self.pending)
            spacer.piece(token)
            self.prev, self.quote_open, self.pending = spacer.prev, spacer.quote_open, spacer.pending
            self.after_space = self.after_space and token in DEPARTURES
            return piece
        self.prev, self.after_space = token, False
        self.quote_open ^= token in _QUOTES  # as join() counts quotes, so both ways agree
        return piece
