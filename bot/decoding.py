"""The bot's decoding options in one place: /continue, replies to mentions, conversations' turns, training samples."""

from __future__ import annotations

from core import GenerationConfig

from .settings import BotSettings
from .storage import GuildSettings

SAMPLE_WORDS = 20  # length of the sample shown when a training ends


def decoding(
    settings: BotSettings,
    server: GuildSettings,
    *,
    words: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    variants: int = 1,
) -> GenerationConfig:
    """The core's readable sampling with the server's defaults, unless the asker chose otherwise."""
    chosen = {"top_p": top_p} if top_p is not None else {}
    return GenerationConfig.readable(
        max_new_tokens=words or server.words,
        temperature=temperature if temperature is not None else server.temperature,
        top_k=settings.top_k,
        num_return_sequences=variants,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        **chosen,
    )


def turn_options(settings: BotSettings, server: GuildSettings) -> dict:
    """A conversation's next turn: the server's temperature and the bot's sampling limits; its length and where it
    stops are the corpus's turn, which core's Conversation chooses."""
    return {
        "temperature": server.temperature,
        "top_k": settings.top_k,
        "no_repeat_ngram_size": settings.no_repeat_ngram_size,
    }
