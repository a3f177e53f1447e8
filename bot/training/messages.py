"""What a training job shows in Discord: its place in line, its progress, and how it ended."""

from __future__ import annotations

from core import ContinuoError, GenerationConfig, ModelCard, Progress, Tokenizer

from ..models import ModelService
from ..text import duration, format_continuations, progress_bar

HOW_TO_ADD_TEXT = ": add it with /corpus add, /corpus learn or /corpus use"  # ends core's "corpus too small" line
SAMPLE_LINES = 5  # a line may hold only words the model does not know: try a few
SAMPLE_CHARS = 1500  # room left for the sample in the final message


def queued(guild_name: str, place: int, at_a_time: int) -> str:
    return (
        f"⏳ Training of **{guild_name}**'s model is queued: place {place} (the machine trains {at_a_time} at a time)."
    )


def starting(guild_name: str, automatic: bool) -> str:
    why = " (automatic: the corpus has grown)" if automatic else ""
    return f"🏋️ Training **{guild_name}**'s model{why}: starting…"


def progress(guild_name: str, p: Progress | None, notice: str = "") -> str:
    """`notice`: what the training found at its start, e.g. that it resumes from a checkpoint."""
    if p is None:
        return f"🏋️ Training **{guild_name}**'s model: starting…"
    ppl = f" · validation perplexity {p.val_perplexity:.1f}" if p.val_perplexity is not None else ""
    eta = f" · ETA {duration(p.eta_s)}" if p.eta_s is not None else ""
    return (
        f"🏋️ Training **{guild_name}**'s model\n`{progress_bar(p.fraction)}` {p.fraction:.0%} · epoch "
        f"{p.epoch}/{p.epochs}{ppl}{eta}" + (f"\n{notice[:1].upper()}{notice[1:]}." if notice else "")
    )


def succeeded(guild_name: str, card: ModelCard, sample: str) -> str:
    epochs = f"{card.epochs} epoch{'s' if card.epochs != 1 else ''}"
    return (
        f"✅ **{guild_name}**'s new model is in use: validation perplexity **{card.val_perplexity:.1f}** "
        f"({card.tokens:,} tokens, {card.vocab_size:,} words known, {epochs}, {duration(card.train_seconds)})."
        f"\n{sample}"
    )


def failed(guild_name: str, reason: str) -> str:
    return f"❌ Training **{guild_name}**'s model failed: {reason}. The previous model stays in use."


def interrupted(guild_name: str) -> str:
    return (
        f"⚠️ Training **{guild_name}**'s model was interrupted by a shutdown; the previous model stays in use. "
        "Run /train to start again."
    )


def handed_back(guild_name: str) -> str:
    return (
        f"⏸️ Training **{guild_name}**'s model paused: the bot is restarting. It carries on when the bot is back, "
        "from its last finished epoch; the previous model stays in use meanwhile."
    )


def resumed(guild_name: str) -> str:
    return f"▶️ The bot is back: training **{guild_name}**'s model carries on from its last finished epoch."


async def sample(models: ModelService, guild_id: int, corpus: str, config: GenerationConfig, words: int = 3) -> str:
    """A continuation by the server's new model of the first words of one of the corpus's last lines."""
    tokenizer = Tokenizer()  # the segmentation training used: three characters of a line of Chinese, say
    seeds = [seed for line in corpus[-20_000:].splitlines() if (seed := tokenizer.opening(line, words))]
    problem = f"the corpus has no line of {words} words or more"
    for seed in seeds[::-1][:SAMPLE_LINES]:
        try:
            return "Sample: " + format_continuations(seed, await models.generate(guild_id, seed, config), SAMPLE_CHARS)
        except ContinuoError as e:
            problem = str(e)
    return f"(no sample: {problem})"
