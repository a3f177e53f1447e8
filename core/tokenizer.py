"""Word-level tokenizer that keeps what a reader needs, and the vocabulary that numbers its tokens.

`words` mode keeps case, makes each punctuation mark its own token, keeps contractions,
hyphenated words, numbers, URLs and emoji whole, and turns each line break into a "\\n" token.
`whitespace` mode is for pre-tokenized corpora such as PTB: split on spaces, one "\\n" per line.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

NEWLINE = "\n"
PAD = "\x00pad"  # id 0: fills windows shorter than the model's context; never generated
UNK = "\x00unk"  # id 1: words outside the vocabulary; never generated
SPECIALS = (PAD, UNK)

_EMOJI_TAIL = "\ufe0f\U0001f3fb-\U0001f3ff"  # variation selector, skin tones
_TOKEN = re.compile(
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

# Spacing rules for detokenizing: no space before CLOSE marks, none after OPEN marks.
_CLOSE = set(".,;:!?%)]}…”’")
_OPEN = set("([{“‘$#¿¡")
_END_RUN = set(".!?")  # "...", "!!", "?!?" close up like a single mark
_QUOTES = {'"', "'"}  # straight quotes open and close by turns


def normalize(text: str) -> str:
    """Unify line endings, drop control characters and collapse runs of spaces."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(
        c for c in text if c == "\n" or c == "\t" or unicodedata.category(c)[0] != "C" or c in "\u200d\ufe0f"
    )
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r" ?\n ?", "\n", text).strip(" ")


def tokenize_words(text: str) -> list[str]:
    return [m.group() for m in _TOKEN.finditer(normalize(text))]


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


@lru_cache(maxsize=65536)
def _glues(prev: str, cur: str) -> bool:
    """Whether writing `cur` right after `prev` still reads back as those two tokens."""
    return tokenize_words(prev + cur) == [prev, cur]


def detokenize_words(tokens: Iterable[str], prev: str | None = None, quote_open: bool = False) -> str:
    """Join tokens into natural text. `prev` is the token before them, for the first space."""
    out: list[str] = []
    for tok in tokens:
        if prev is None or prev == NEWLINE or tok == NEWLINE:
            space = False
        elif tok in _QUOTES:
            space = not quote_open  # an opening quote takes a space, a closing one does not
        elif prev in _QUOTES:
            space = not quote_open  # after an opening quote no space; after a closing one, a space
        else:
            space = not (tok in _CLOSE or set(tok) <= _END_RUN or prev in _OPEN)
        if not space and prev not in (None, NEWLINE) and tok != NEWLINE and not _glues(prev, tok):
            space = True  # gluing would merge the two into one token
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

    def __post_init__(self):
        if self.mode not in ("words", "whitespace"):
            raise ValueError(f"unknown tokenizer mode {self.mode!r}: use 'words' or 'whitespace'")
        self.index = {tok: i for i, tok in enumerate(self.vocab)}

    # --- text <-> tokens
    def split(self, text: str) -> list[str]:
        return tokenize_whitespace(text) if self.mode == "whitespace" else tokenize_words(text)

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
        return detokenize_words(tokens, prev, quote_open)

    def continuation(self, prompt: str, prompt_tokens: list[str] | None = None) -> Continuation:
        """How text that continues `prompt` is spaced (`prompt_tokens`: its tokens, when already split)."""
        tokens = self.split(prompt) if prompt_tokens is None else prompt_tokens
        return Continuation(self, tokens[-1] if tokens else None, tokens.count('"') % 2 == 1, prompt[-1:].isspace())

    def unfinished_word(self, text: str, tokens: list[str] | None = None) -> str:
        """The last word of `text` while it is still being typed (nothing after it yet), else ""."""
        tokens = self.split(text) if tokens is None else tokens
        return tokens[-1] if tokens and text[-1:].isalnum() and tokens[-1][-1:].isalnum() else ""

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
        """Vocabulary of the tokens seen at least `min_count` times, most frequent first."""
        counts = Counter(tokens)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in SPECIALS), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(mode=mode, vocab=[*SPECIALS, *ranked])

    # --- persistence
    def to_json(self) -> str:
        return json.dumps({"mode": self.mode, "vocab": self.vocab}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        return cls(mode=data["mode"], vocab=data["vocab"])


@dataclass
class Continuation:
    """Where text that continues a prompt starts: after the prompt's last token, inside a quote it left open, and
    with no space of its own when the prompt already ends with one. The one rule for every front-end."""

    tokenizer: Tokenizer
    prev: str | None  # the last token so far
    quote_open: bool  # a straight double quote is open
    after_space: bool  # the prompt ends with whitespace, so the continuation starts without a space

    def text(self, tokens: Iterable[str]) -> str:
        """What to append to the prompt so that it reads on with `tokens`."""
        text = self.tokenizer.join(tokens, prev=self.prev, quote_open=self.quote_open)
        return text.lstrip(" ") if self.after_space else text

    def add(self, token: str) -> str:
        """The next piece, for tokens that come one at a time: the pieces add up to text() of them all."""
        piece = self.text([token])
        self.prev, self.after_space = token, False
        self.quote_open ^= token in _QUOTES  # as join() counts quotes, so both ways agree
        return piece
