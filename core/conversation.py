"""Conversations: how a corpus separates its turns, and the model's next turn given the turns so far."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .errors import DecodingError
from .tokenizer import NEWLINE, tokenize_whitespace, tokenize_words

if TYPE_CHECKING:
    from .generate import GenerationConfig, LanguageModel

BOUNDARIES = {"line": "\n", "paragraph": "\n\n"}  # what ends a turn -> the text between two turns
SPEAKER_STYLES = ("none", "prefix", "line")
SAMPLE_CHARS = 400_000  # of a corpus, read to measure its turns: its shape shows long before that
BLANK_LINES_PER_LINE = 1 / 20  # at least one blank line per 20 lines of text: blank lines separate its turns
LABELLED_SHARE = 0.5  # at least this share of turns open with a speaker's label: the corpus names its speakers
CONTEXT_TOKENS = 500  # turns read back at most: what the n-gram cache counts (core.ngram.CACHE_SIZE)
RETRIES = 3  # draws of a turn that ended before its first word, before an empty turn is given back
_LABEL_LINE = re.compile(r"^(?P<name>[^\W\d_][\w'’.\- ]{0,39}):$")  # "First Citizen:" alone on a line
_LABEL_PREFIX = re.compile(r"^(?P<name>[^\W_][\w'’.\-]{0,31}(?: [\w'’.\-]+){0,2}): (?P<text>\S.*)$", re.S)


@dataclass
class Turn:
    """One turn of a conversation: its text and, where there is one, who said it."""

    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class TurnFormat:
    """How a corpus separates its turns and names their speakers; measured at training time and kept on the card."""

    boundary: str = "line"  # what ends a turn: "line" (a line break) or "paragraph" (a blank line)
    speakers: str = "none"  # a turn's speaker: "none", "prefix" ("name: text") or "line" ("NAME:" above the text)
    turn_tokens: int = 40  # the 90th percentile of the corpus's turns in tokens: a new turn's length limit

    def __post_init__(self):
        if self.boundary not in BOUNDARIES or self.speakers not in SPEAKER_STYLES or self.turn_tokens < 1:
            raise ValueError(f"not a turn format: {self}")

    @property
    def separator(self) -> str:
        """The text between two turns."""
        return BOUNDARIES[self.boundary]

    # --- measured from a corpus, or inferred for a bundle trained before turns were measured
    @classmethod
    def measure(cls, text: str, mode: str = "words") -> TurnFormat:
        """The shape of `text`: do blank lines separate its blocks, do turns open with a speaker, how long are they."""
        sample = text[:SAMPLE_CHARS].replace("\r\n", "\n").replace("\r", "\n")
        lines = [line.strip() for line in sample.split("\n")]
        written = [line for line in lines if line]
        gaps = sum(1 for a, b in zip(lines, lines[1:], strict=False) if a and not b)  # a line followed by a blank one
        boundary = "paragraph" if gaps >= 2 and gaps >= BLANK_LINES_PER_LINE * len(written) else "line"
        if boundary == "paragraph":
            turns = [block.strip() for block in re.split(r"\n[ \t]*\n", sample) if block.strip()]
        else:
            turns = written
        speakers = "none"
        if turns:
            line_labels = sum(1 for t in turns if "\n" in t and _LABEL_LINE.match(t.split("\n", 1)[0].strip()))
            prefix_labels = sum(1 for t in turns if _LABEL_PREFIX.match(t))
            if boundary == "paragraph" and line_labels >= LABELLED_SHARE * len(turns):
                speakers = "line"
            elif prefix_labels >= LABELLED_SHARE * len(turns):
                speakers = "prefix"
        split = tokenize_whitespace if mode == "whitespace" else tokenize_words
        ends = len(BOUNDARIES[boundary])
        lengths = [len(split(t)) + ends for t in turns[:5000]] or [cls.turn_tokens]
        return cls(boundary, speakers, int(np.clip(np.percentile(lengths, 90), 8, 200)))

    @classmethod
    def infer(cls, model: LanguageModel) -> TurnFormat:
        """A bundle without a measured format: blank lines end its turns when the model, after one line break
        at the start of a text, gives another at least one time in 20 (verse, prose in paragraphs); otherwise
        a line break does (chat). No speakers; 40 tokens a line, 80 a paragraph."""
        newline = model.tokenizer.index.get(NEWLINE)
        if newline is None:
            return cls()
        p_blank = float(np.exp(model.next_log_probs([[newline]])[0, newline]))
        return cls("paragraph", "none", 80) if p_blank >= BLANK_LINES_PER_LINE else cls("line", "none", 40)

    @classmethod
    def of(cls, model: LanguageModel) -> TurnFormat:
        """The format on the model's card, or for older bundles the one inferred from the model."""
        stored = getattr(model.card, "turns", None)
        if stored:
            known = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
            try:
                return cls(**known)
            except (TypeError, ValueError):
                pass  # a card from a later Continuo that writes turns differently: infer as for an old one
        return cls.infer(model)

    def to_dict(self) -> dict:
        return asdict(self)

    # --- turns as text
    def write(self, turn: Turn) -> str:
        """The turn as the corpus would hold it, without the separator after it."""
        text = turn.text.strip()
        if self.boundary == "line":
            text = re.sub(r"\s*\n\s*", " ", text)  # one message a line
        else:
            text = re.sub(r"\n\s*\n+", "\n", text)  # a blank line would end the turn
        if turn.speaker and self.speakers == "prefix":
            return f"{turn.speaker}: {text}"
        if turn.speaker and self.speakers == "line":
            return f"{turn.speaker}:\n{text}"
        return text

    def read(self, text: str) -> Turn:
        """A turn from its text: a leading speaker's label taken off where the corpus names speakers."""
        text = text.strip()
        if self.speakers == "line":
            first, _, rest = text.partition("\n")
            match = _LABEL_LINE.match(first.strip())
            if match and rest.strip():
                return Turn(rest.strip(), match["name"])
        if self.speakers in ("line", "prefix"):
            match = _LABEL_PREFIX.match(text)
            if match:
                return Turn(match["text"].strip(), match["name"])
        return Turn(text)

    def split(self, text: str) -> list[Turn]:
        """The turns of a text written as the corpus writes them (a transcript, a held-out part of the corpus)."""
        pattern = r"\n" if self.boundary == "line" else r"\n[ \t]*\n"
        return [self.read(part) for part in re.split(pattern, text.replace("\r\n", "\n")) if part.strip()]

    def opening(self, speaker: str | None) -> str:
        """What the text of a turn by `speaker` starts with: the label, where the corpus names speakers."""
        if speaker and self.speakers == "prefix":
            return f"{speaker}: "
        if speaker and self.speakers == "line":
            return f"{speaker}:\n"
        return ""


@dataclass
class Conversation:
    """The turns so far with one model: what the model reads (its window and its cache), and its next turn."""

    model: LanguageModel
    turns: list[Turn] = field(default_factory=list)
    format: TurnFormat | None = None  # default: TurnFormat.of(model)

    def __post_init__(self):
        if self.format is None:
            self.format = TurnFormat.of(self.model)
        self.turns = [t if isinstance(t, Turn) else Turn(t) for t in self.turns]

    @property
    def shape(self) -> TurnFormat:
        assert self.format is not None  # set in __post_init__
        return self.format

    def add(self, text: str, speaker: str | None = None) -> Turn:
        """Append a turn (its text as a person wrote it) and return it."""
        turn = Turn(text.strip(), speaker)
        self.turns.append(turn)
        return turn

    def prompt(self, speaker: str | None = None, turns: Sequence[Turn] | None = None) -> str:
        """The text the model continues: the last turns (as many as the cache reads), each ended by the corpus's
        boundary, then the next speaker's label where one is asked for."""
        fmt, tokenizer = self.shape, self.model.tokenizer
        kept: list[str] = []
        budget = CONTEXT_TOKENS
        for turn in reversed(self.turns if turns is None else turns):
            text = fmt.write(turn) + fmt.separator
            budget -= len(tokenizer.split(text))
            if budget < 0 and kept:
                break
            kept.append(text)
        return ("".join(reversed(kept)) if kept else fmt.separator) + fmt.opening(speaker)

    def generation_config(self, config: GenerationConfig | None = None, **options) -> GenerationConfig:
        """`config` (default: the readable preset with the corpus's long turn as its length) with `options`,
        stopping at the corpus's turn boundary unless another stop is asked for."""
        from .generate import GenerationConfig

        if config is None:
            cfg = GenerationConfig.readable(**{"max_new_tokens": self.shape.turn_tokens, **options})
        else:
            cfg = GenerationConfig.make(config, **options)
        if cfg.num_beams > 1 or cfg.num_return_sequences > 1:
            raise DecodingError("a turn is one sequence, streamed: use num_beams=1 and num_return_sequences=1")
        return cfg if cfg.stop_at else replace(cfg, stop_at=self.shape.boundary)

    def stream(self, config: GenerationConfig | None = None, speaker: str | None = None, **options) -> TurnStream:
        """The next turn in the model's voice, piece by piece as each word is chosen (see TurnStream)."""
        return TurnStream(self, self.generation_config(config, **options), speaker)

    def reply(self, config: GenerationConfig | None = None, speaker: str | None = None, **options) -> Turn:
        """The next turn in the model's voice (not added to the conversation)."""
        stream = self.stream(config, speaker, **options)
        for _ in stream:
            pass
        return stream.turn

    # --- the next turn decoded by the caller (the bot decodes many conversations' turns in one batch)
    retries = RETRIES  # an empty turn (it ended before its first word) is worth drawing again this many times

    def request(
        self, config: GenerationConfig | None = None, speaker: str | None = None, **options
    ) -> tuple[str, GenerationConfig]:
        """What to decode for the next turn, where the caller decodes it: the prompt and the options (as `stream`)."""
        return self.prompt(speaker), self.generation_config(config, **options)

    def turn_from(self, continuation: str, speaker: str | None = None) -> Turn:
        """The next turn from `continuation`, the text decoded after `prompt(speaker)`: as `reply` would give it,
        its boundary left out and the speaker's label, where the model wrote one, taken off into its speaker."""
        stream = TurnStream(self, self.generation_config(), speaker, decoded=continuation)
        for _ in stream:
            pass
        return stream.turn

    def turn_log_probs(self, turn: Turn, context: bool = True) -> np.ndarray:
        """log P of each token of `turn` (as the corpus writes it, its boundary included) after the turns so far,
        or with `context` False from the start of a text, as if nothing came before it."""
        fmt, tokenizer = self.shape, self.model.tokenizer
        ids = tokenizer.encode(fmt.write(turn) + fmt.separator)
        before = tokenizer.encode(self.prompt()) if context else []
        return self.model.target_log_probs(np.array(before + ids, np.int32))[len(before) :]


class TurnStream:
    """A turn as it is decoded: iterate for its text piece by piece (each piece a word or mark with its spacing).

    `speaker` is known before the first piece: the one asked for, or the label the model wrote, taken off the
    text. Line breaks inside a turn come with the word after them, so the turn's boundary never shows; `turn`
    is the whole turn once iterated.
    """

    def __init__(
        self,
        conversation: Conversation,
        config: GenerationConfig,
        speaker: str | None = None,
        decoded: str | None = None,  # the turn's text decoded elsewhere (Conversation.turn_from): read, not decoded
    ):
        self.conversation, self.config = conversation, config
        self.speaker = speaker
        self.text = ""
        self._pieces = self._decode() if decoded is None else self._read(decoded)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop decoding (the model is free again at once)."""
        self._pieces.close()

    @property
    def turn(self) -> Turn:
        return Turn(self.text.strip(), self.speaker)

    def _decode(self) -> Generator[str, None, None]:
        conversation, fmt = self.conversation, self.conversation.shape
        prompt = conversation.prompt(self.speaker)
        label = fmt.speakers != "none" and self.speaker is None  # the model names the next speaker
        for attempt in range(RETRIES):
            seed = self.config.seed
            cfg = self.config if attempt == 0 or seed is None else replace(self.config, seed=seed + attempt)
            pieces = conversation.model.stream(prompt, cfg)
            if label:
                pieces = self._labelled(pieces, fmt)
            yield from self._text(pieces)
            if self.text.strip() or not cfg.do_sample:
                return

    def _read(self, decoded: str) -> Generator[str, None, None]:
        fmt = self.conversation.shape
        pieces: Iterable[str] = [decoded]
        if fmt.speakers != "none" and self.speaker is None:
            pieces = self._labelled(pieces, fmt)
        yield from self._text(pieces)

    def _labelled(self, pieces: Iterable[str], fmt: TurnFormat) -> Iterator[str]:
        """`pieces` with a leading speaker's label taken off into `speaker`."""
        pieces = iter(pieces)
        head = ""
        for piece in pieces:
            head += piece
            # a label ends its line ("NAME:\n") or is followed by the text's first word ("name: text")
            if "\n" in head.lstrip("\n") or (":" in head and not head.rstrip().endswith(":")) or len(head) > 48:
                break
        head = head.lstrip("\n")
        first, newline, rest = head.partition("\n")
        if fmt.speakers == "line" and newline and (match := _LABEL_LINE.match(first.strip())):
            self.speaker, head = match["name"], rest
        elif fmt.speakers == "prefix" and (match := _LABEL_PREFIX.match(head)):
            self.speaker, head = match["name"], head[match.start("text") :]
        if head:
            yield head
        yield from pieces

    def _text(self, pieces: Iterable[str]) -> Iterator[str]:
        """The turn's pieces without its boundary: line breaks are held back until a word follows them."""
        held = ""
        for piece in pieces:
            if not piece.strip():  # a line break (or a bare space): part of the turn only if a word follows
                held += piece
                continue
            piece = held + piece
            held = ""
            if not self.text:
                piece = piece.lstrip()  # a turn starts with its first word
            self.text += piece
            yield piece
