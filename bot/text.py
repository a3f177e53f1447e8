"""Text in and out of Discord: mentions that never ping, markdown kept literal, the 2000-character limit."""

from __future__ import annotations

import re

from discord.utils import escape_markdown

from core import count_tokens as count_corpus_tokens

MESSAGE_LIMIT = 2000  # characters in one Discord message
ZWSP = "\u200b"  # a zero-width space breaks mention syntax without changing how the text looks

_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_ID_MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")  # <@user>, <@!user>, <@&role>, <#channel>
_ANY_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>|@(?:everyone|here)\b", re.IGNORECASE)
_COMMAND = re.compile(r"^\s*[!/?$;.,~+=%&][A-Za-z]")  # "!play", "/help", "?rank": another bot's command
_CUSTOM_EMOJI = re.compile(r"<a?(:\w+:)\d+>")


def defang(text: str) -> str:
    """Text whose mentions cannot notify anyone, even in a client that ignores allowed_mentions."""
    text = _MASS_MENTION.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)
    return _ID_MENTION.sub(lambda m: f"<{m.group(1)}{ZWSP}{m.group(2)}>", text)


def safe(text: str) -> str:
    """Generated or quoted text shown as it is: no markdown effects, no pings."""
    return defang(escape_markdown(text))


def count_tokens(text: str) -> int:
    """Tokens as training counts them, plus the line break that separates corpus entries."""
    return count_corpus_tokens(text) + 1


def corpus_text(content: str, bot_id: int | None = None) -> str | None:
    """What a channel message adds to the corpus, or None when it adds nothing (commands, bare mentions)."""
    if not content or _COMMAND.match(content):
        return None
    if bot_id is not None and re.search(rf"<@!?{bot_id}>", content):
        return None  # talking to the bot is a command, not the server's voice
    text = _CUSTOM_EMOJI.sub(r"\1", _ANY_MENTION.sub("", content))  # names and ids are not language
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    return text or None


_BOLD = re.compile(r"(?<!\\)\*\*")  # the bold marks around a continuation's seed (a generated "**" is escaped)
_ESCAPE = re.compile(r"\\(?=[*`_~|>\[#\s-])")  # the backslashes escape_markdown adds, as `safe` does


def turn_text(content: str, own: bool = False) -> str:
    """What a message says as a turn of a conversation: mentions (the bot's own included) and custom emoji ids
    taken out; in the bot's own messages (`own`) the bold seed marks and what `safe` added undone."""
    text = content
    if own:
        text = _ESCAPE.sub("", _BOLD.sub("", text.replace(ZWSP, "")))
    text = _CUSTOM_EMOJI.sub(r"\1", _ANY_MENTION.sub("", text))
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary where one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip("\\") + "…"  # a trailing backslash would escape the ellipsis


def format_continuations(seed: str, continuations: list[str], limit: int = MESSAGE_LIMIT) -> str:
    """The seed in bold and each continuation after it, numbered when there are several, within `limit`."""
    head = f"**{shorten(safe(seed), 400)}**"
    numbered = len(continuations) > 1
    separators = (len(continuations) - 1) * 2
    overhead = sum(len(head) + (5 if numbered else 0) for _ in continuations) + separators
    share = max(20, (limit - overhead) // max(1, len(continuations)))
    parts = []
    for i, text in enumerate(continuations, 1):
        body = shorten(safe(text), share) or "…"
        parts.append((f"`{i}.` " if numbered else "") + head + body)
    return shorten("\n\n".join(parts), limit)


def progress_bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def duration(seconds: float | None) -> str:
    """ "1h 02m", "3m 05s", "42s"."""
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
