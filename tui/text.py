"""Text helpers: how ghost text is drawn on one line and taken a word at a time, and what a picked word adds."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.tokenizer import Tokenizer

NEWLINE_MARK = "⏎"  # how a line break is drawn where text must stay on one line
_NEXT_WORD = re.compile(r"\s*(?:\w[\w'’-]*|\S)")  # a word with its apostrophes and hyphens, or one mark


def shown(text: str) -> str:
    """Text as drawn on one line: line breaks become a visible mark."""
    return text.replace("\n", NEWLINE_MARK)


def next_word(completion: str) -> str:
    """The start of `completion` up to the end of its first word (or mark), line breaks included."""
    match = _NEXT_WORD.match(completion)
    return match.group() if match else completion


def unfinished_word(text: str, tokens: list[str]) -> str:
    """The last word while it is still being typed (nothing after it), as the core's candidates see it."""
    return tokens[-1] if tokens and text[-1:].isalnum() and tokens[-1][-1:].isalnum() else ""


def appended(text: str, token: str, tokenizer: "Tokenizer") -> str:
    """What to add to `text` so that it ends with `token`: an unfinished word's rest, or the token spaced as text."""
    tokens = tokenizer.split(text)
    stem = unfinished_word(text, tokens)
    if stem and token.startswith(stem):
        return token[len(stem):]
    piece = tokenizer.join([token], prev=tokens[-1] if tokens else None, quote_open=tokens.count('"') % 2 == 1)
    return piece.lstrip(" ") if not text or text[-1:].isspace() else piece
