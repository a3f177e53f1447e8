"""Text helpers: how ghost text is drawn on one line and taken a word at a time, and what a picked word adds.

Spacing, words and unfinished words follow the core's tokenizer (Tokenizer.continuation, Tokenizer.leading,
Tokenizer.unfinished_word).
"""

from __future__ import annotations

from core import Tokenizer

NEWLINE_MARK = "⏎"  # how a line break is drawn where text must stay on one line
_WORDS = Tokenizer()  # where a word of the ghost ends: one character of Chinese, a word of English


def shown(text: str) -> str:
    """Text as drawn on one line: line breaks become a visible mark."""
    return text.replace("\n", NEWLINE_MARK)


def next_word(completion: str) -> str:
    """The start of `completion` up to the end of its first word (or mark), line breaks included."""
    return _WORDS.leading(completion)


def appended(text: str, token: str, tokenizer: Tokenizer) -> str:
    """What to add to `text` so that it ends with `token`: an unfinished word's rest, or the token spaced as text."""
    tokens = tokenizer.split(text)
    stem = tokenizer.unfinished_word(text, tokens)
    if stem and token.startswith(stem):
        return token[len(stem) :]
    return tokenizer.continuation(text, tokens).text([token])
