"""Per-server training in background processes: one job per server, a global limit, a queue with places."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

from core import MIN_TOKENS, ContinuoError, CorpusTooSmall, GenerationConfig, JobRunner, Progress, TrainRequest, \
    find_corpus, read_text

from .models import ModelService
from .settings import BotSettings
from .storage import Store, TrainingJobRecord
from .storage.base import utcnow
from .text import count_tokens, duration, format_continuations, progress_bar, safe

log = logging.getLogger(__name__)


class AlreadyTraining(ContinuoError):
    """The server already has a job queued or running."""


class Display(Protocol):
    """Where a job shows how it is doing (a Discord message that gets edited)."""

    async def show(self, text: str) -> None: ...


@dataclass
class Ticket:
    """A job in the queue or in training."""

    record: TrainingJobRecord
    guild_name: str  # already made safe to show
    display: Display | None
    latest: Progress | None = None  # the last progress report from the training process
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    job: object | None = None  # the runner's Job once it started

    @property
    def guild_id(self) -> int:
        return self.record.guild_id


class TrainingQueue:
    """Starts jobs in arrival order, at most `max_training_jobs` at once, and reports their progress."""

    def __init__(self, store: Store, models: ModelService, settings: BotSettings, runner: JobRunner,
                 channel_display: Callable[[int], Display] | None = None):
        self.store, self.models, self.settings, self.runner = store, models, settings, runner
        self.channel_display = channel_display  # where automatic retraining shows progress: the last /train's channel
        self._waiting: list[Ticket] = []
        self._running: dict[int, Ticket] = {}
        self._tasks: set[asyncio.Task] = set()
        self._last_growth_check: dict[int, float] = {}
        self._base_token_counts: dict[str, int] = {}
        self._submitting: set[int] = set()  # servers whose request is between its checks and the queue
        self._closing = False

    # --- asking
    def ticket(self, guild_id: int) -> Ticket | None:
        return self._running.get(guild_id) or next((t for t in self._waiting if t.guild_id == guild_id), None)

    def place(self, ticket: Ticket) -> int:
        """1 for the next job to start; 0 while it trains."""
        return 0 if ticket in self._running.values() else self._waiting.index(ticket) + 1

    async def corpus(self, guild_id: int) -> tuple[str, str]:
        """(text, name) the server's model trains on: its base corpus, then its own texts, oldest first."""
        base = await self.store.base_corpus(guild_id)
        texts = await self.store.corpus_texts(guild_id)
        if base and (corpus := find_corpus(base)) is not None:
            texts.insert(0, await asyncio.to_thread(read_text, corpus.path))
        name = f"this server's text on top of {base}" if base else "this server's text"
        return await asyncio.to_thread("\n".join, texts), name

    async def corpus_tokens(self, guild_id: int) -> int:
        """Tokens the server's model would train on, from the counts kept with each stored text."""
        stats = await self.store.corpus_stats(guild_id)
        return stats.tokens + (await self._base_tokens(stats.base) if stats.base else 0)

    async def _base_tokens(self, name: str) -> int:
        if name not in self._base_token_counts:
            corpus = find_corpus(name)
            text = await asyncio.to_thread(read_text, corpus.path) if corpus is not None else ""
            self._base_token_counts[name] = await asyncio.to_thread(count_tokens, text) if text else 0
        return self._base_token_counts[name]

    # --- submitting
    async def submit(self, guild_id: int, guild_name: str, requested_by: int, channel_id: int | None,
                     epochs: int | None = None, display: Display | None = None) -> Ticket:
        """Queue a training of the server's model; refuses a second one and a corpus too small."""
        current = self.ticket(guild_id)
        if current is not None:
            where = "is training now" if self.place(current) == 0 else f"is queued (place {self.place(current)})"
            raise AlreadyTraining(f"this server's model {where}; wait for that run to finish")
        if guild_id in self._submitting:
            raise AlreadyTraining("this server's model is being queued; wait for that run to finish")
        self._submitting.add(guild_id)  # claimed before the first await: two requests cannot both pass
        try:
            tokens = await self.corpus_tokens(guild_id)
            if tokens < MIN_TOKENS:
                raise CorpusTooSmall(f"the corpus has {tokens:,} tokens; training needs at least {MIN_TOKENS:,}: add "
                                     f"about {MIN_TOKENS - tokens:,} more words with /corpus add, /corpus learn or "
                                     f"/corpus use")
            epochs = min(epochs or self.settings.train_options.epochs, self.settings.max_epochs)
            record = await self.store.add_job(guild_id, requested_by, channel_id, epochs, tokens)
            ticket = Ticket(record, safe(guild_name), display)
            self._waiting.append(ticket)
        finally:
            self._submitting.discard(guild_id)
        self._start_waiting()
        await self._show_places()
        return ticket

    async def maybe_retrain(self, guild_id: int, guild_name: str) -> Ticket | None:
        """Retrain when the server asked for it and its corpus grew enough since the last training."""
        now = time.monotonic()
        if now - self._last_growth_check.get(guild_id, -1e9) < self.settings.retrain_check_s:
            return None
        self._last_growth_check[guild_id] = now
        if self.ticket(guild_id) is not None or guild_id in self._submitting:
            return None
        growth = (await self.store.guild_settings(guild_id)).retrain_growth
        last = await self.store.last_job(guild_id, "succeeded")
        if growth <= 0 or last is None:
            return None
        tokens = await self.corpus_tokens(guild_id)
        if tokens < last.corpus_tokens * (1 + growth):
            return None
        log.info("guild %s: corpus grew from %s to %s tokens; retraining", guild_id, last.corpus_tokens, tokens)
        try:
            display = self.channel_display(last.channel_id) if self.channel_display and last.channel_id else None
            return await self.submit(guild_id, guild_name, 0, last.channel_id, display=display)
        except ContinuoError as e:
            log.info("guild %s: automatic retraining not started: %s", guild_id, e)
            return None

    def _start_waiting(self) -> None:
        while self._waiting and len(self._running) < self.settings.max_training_jobs and not self._closing:
            ticket = self._waiting.pop(0)
            self._running[ticket.guild_id] = ticket
            task = asyncio.create_task(self._train(ticket), name=f"train-guild-{ticket.guild_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _show_places(self) -> None:
        for ticket in list(self._waiting):
            place = self.place(ticket)
            await self._show(ticket, f"⏳ Training of **{ticket.guild_name}**'s model is queued: place {place} "
                                     f"(the machine trains {self.settings.max_training_jobs} at a time).")

    @staticmethod
    async def _show(ticket: Ticket, text: str) -> None:
        if ticket.display is None:
            return
        try:
            await ticket.display.show(text)
        except Exception:  # noqa: BLE001 - a lost progress message must not stop the training
            log.warning("could not show training progress for guild %s", ticket.guild_id, exc_info=True)

    # --- training
    async def _train(self, ticket: Ticket) -> None:
        loop = asyncio.get_running_loop()
        relay = None
        try:
            text, name = await self.corpus(ticket.guild_id)
            await self.store.update_job(ticket.record.id, status="running", started_at=utcnow())
            why = "" if ticket.record.requested_by else " (automatic: the corpus has grown)"
            await self._show(ticket, f"🏋️ Training **{ticket.guild_name}**'s model{why}: starting…")
            request = TrainRequest(
                out=self.models.bundle_path(ticket.guild_id), text=text, corpus_name=name,
                model=self.settings.train_model,
                train=replace(self.settings.train_options, epochs=ticket.record.epochs),
                checkpoint_dir=self.models.checkpoint_path(ticket.guild_id))  # a rerun after a restart resumes
            on_progress = lambda p: loop.call_soon_threadsafe(self._progress, ticket, p)  # from the reader thread
            # starting a process sends it the whole corpus: not on the event loop
            submitting = asyncio.ensure_future(asyncio.to_thread(self.runner.submit, request, on_progress))
            try:
                ticket.job = await asyncio.shield(submitting)
            except asyncio.CancelledError:
                ticket.job = await submitting  # the process exists now: it must be told to stop
                raise
            relay = asyncio.create_task(self._relay(ticket))
            result = await asyncio.to_thread(ticket.job.result)
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)  # no progress edit may land after the result
            await self.models.reload(ticket.guild_id)
            card = result.card
            await self.store.update_job(ticket.record.id, status="succeeded", finished_at=utcnow(),
                                        val_perplexity=card.val_perplexity)
            sample = await self._sample(ticket.guild_id, text)
            await self._show(ticket, (
                f"✅ **{ticket.guild_name}**'s new model is in use: validation perplexity **{card.val_perplexity:.1f}** "
                f"({card.tokens:,} tokens, {card.vocab_size:,} words known, {card.epochs} epoch"
                f"{'s' if card.epochs != 1 else ''}, {duration(card.train_seconds)}).\n{sample}"))
        except asyncio.CancelledError:
            if ticket.job is not None:
                ticket.job.cancel()
            await self._finish_interrupted(ticket)
            raise
        except Exception as e:  # noqa: BLE001 - any failure keeps the old model and is reported
            reason = str(e) if isinstance(e, ContinuoError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, ContinuoError):
                log.exception("training for guild %s failed", ticket.guild_id)
            await self.store.update_job(ticket.record.id, status="failed", finished_at=utcnow(), error=reason[:500])
            await self._show(ticket, f"❌ Training **{ticket.guild_name}**'s model failed: {reason}. "
                                     "The previous model stays in use.")
        finally:
            if relay is not None:
                relay.cancel()
            self._running.pop(ticket.guild_id, None)
            self._start_waiting()
            if not self._closing:
                await self._show_places()

    async def _finish_interrupted(self, ticket: Ticket) -> None:
        try:
            await self.store.update_job(ticket.record.id, status="interrupted", finished_at=utcnow(),
                                        error="interrupted by a shutdown")
        except Exception:  # noqa: BLE001 - the store may be gone; start-up marks it interrupted anyway
            pass
        await self._show(ticket, f"⚠️ Training **{ticket.guild_name}**'s model was interrupted by a shutdown; the "
                                 "previous model stays in use. Run /train to start again.")

    def _progress(self, ticket: Ticket, progress: Progress) -> None:
        if progress.val_perplexity is None and ticket.latest is not None:  # batch reports carry no perplexity
            progress = replace(progress, val_perplexity=ticket.latest.val_perplexity)
        ticket.latest = progress
        ticket.changed.set()

    async def _relay(self, ticket: Ticket) -> None:
        """Edit the progress message with the latest report, at most once per progress_interval_s."""
        while True:
            await ticket.changed.wait()
            ticket.changed.clear()
            await self._show(ticket, render_progress(ticket.guild_name, ticket.latest))
            await asyncio.sleep(self.settings.progress_interval_s)

    async def _sample(self, guild_id: int, corpus: str) -> str:
        """A continuation by the new model of the first words of one of the corpus's last lines."""
        config = GenerationConfig(max_new_tokens=20, do_sample=True, temperature=0.8, top_k=self.settings.top_k,
                                  no_repeat_ngram_size=self.settings.no_repeat_ngram_size)
        lines = [line.split() for line in corpus[-20_000:].splitlines() if len(line.split()) >= 3]
        problem = "the corpus has no line of three words or more"
        for words in lines[::-1][:5]:  # a line may hold only words the model does not know
            seed = " ".join(words[:3])
            try:
                return "Sample: " + format_continuations(seed, await self.models.generate(guild_id, seed, config), 1500)
            except ContinuoError as e:
                problem = str(e)
        return f"(no sample: {problem})"

    async def close(self) -> None:
        """Stop all jobs: running ones are cancelled and recorded as interrupted, queued ones too."""
        self._closing = True
        for ticket in self._waiting:
            await self._finish_interrupted(ticket)
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def render_progress(guild_name: str, p: Progress | None) -> str:
    if p is None:
        return f"🏋️ Training **{guild_name}**'s model: starting…"
    ppl = f" · validation perplexity {p.val_perplexity:.1f}" if p.val_perplexity is not None else ""
    eta = f" · ETA {duration(p.eta_s)}" if p.eta_s is not None else ""
    return (f"🏋️ Training **{guild_name}**'s model\n`{progress_bar(p.fraction)}` {p.fraction:.0%} · epoch "
            f"{p.epoch}/{p.epochs}{ppl}{eta}")
