"""Each server's model: its own bundle or the default one, loaded on demand, cached, run off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import shutil
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from core import BundleError, ContinuoError, GenerationConfig, LanguageModel, load

from . import metrics
from .forgetting import may_answer
from .storage.versions import ModelVersions

log = logging.getLogger(__name__)


class NoModel(BundleError):
    """Neither the server's own model nor the default model can be loaded."""


class VoiceWithdrawn(ContinuoError):
    """The member stopped sharing their voice (or was forgotten) while an answer in it was decoded."""


class TextRemoved(ContinuoError):
    """Text left the server while an answer in a member's voice was decoded from messages read before."""


@dataclass(frozen=True)
class Voice:
    """A member who shared their voice in a server, and their own messages there (oldest first)."""

    guild_id: int
    member_id: int
    texts: tuple[str, ...]


VOICES_KEPT = 16  # members' voices kept built; one is counted again in well under a second
VOICE_RECOUNT_SHARE = 0.1  # a built voice is counted again once the member's messages grew by this share of it
VOICE_RECOUNT_MESSAGES = 5  # or by this many, whichever is more


def still_serves(counted: tuple[str, ...], texts: tuple[str, ...]) -> bool:
    """Whether a voice counted from `counted` may answer for a member whose messages are now `texts`: only while
    none it counted was edited or removed since (they are still the first of `texts`, oldest first), and until a
    few new ones came. A voice is not counted again for every message its member writes."""
    grown = len(texts) - len(counted)
    return (
        0 <= grown < max(VOICE_RECOUNT_MESSAGES, VOICE_RECOUNT_SHARE * len(counted))
        and texts[: len(counted)] == counted
    )


NEURAL_OVERHEAD_BYTES = 12 << 20  # a loaded neural model's compiled forward passes and graph, beyond its weights


def model_bytes(model: LanguageModel) -> int:
    """Roughly the memory a loaded model holds: its weights, its n-gram and spelling tables and its vocabulary."""
    size = sum(len(t) + 60 for t in model.tokenizer.vocab)  # a str and its dict entry
    if model.model is not None:
        size += NEURAL_OVERHEAD_BYTES + sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.model.weights
        )
    return size + _array_bytes(model.ngram) + _array_bytes(model.spelling)


def _array_bytes(obj, depth: int = 3) -> int:
    """Bytes of the numpy arrays reachable from `obj` through attributes and containers."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if depth == 0 or obj is None or isinstance(obj, (str, bytes, int, float)):
        return 0
    items: Iterable[object]
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (list, tuple)):
        items = obj
    else:
        items = vars(obj).values() if hasattr(obj, "__dict__") else ()
    return sum(_array_bytes(item, depth - 1) for item in items)


class Turns:
    """Batches over one bundle decode one at a time; the next is the one holding the request that waited longest
    (each waiting request is (seed, its future, its arrival number))."""

    def __init__(self) -> None:
        self.busy = False
        self.users = 0  # decoders that may take a turn here
        self._queue: list[tuple[list, asyncio.Future]] = []

    async def take(self, waiting: list) -> None:
        if not self.busy:
            self.busy = True
            return
        entry = (waiting, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if any(e is entry for e in self._queue):
                self._queue.remove(entry)
            else:  # given the turn as it was cancelled: pass it on
                self.give()
            raise

    def give(self) -> None:
        if not self._queue:
            self.busy = False
            return
        entry = min(self._queue, key=lambda e: e[0][0][2] if e[0] else math.inf)
        self._queue.remove(entry)
        entry[1].set_result(None)


class ModelService:
    """Loads bundles in worker threads, keeps the most recently used ones, and swaps in retrained ones.

    A server's model is its current published version (with `versions`: fetched from model storage
    into the local cache), else a bundle at guilds/<id>/model (trained before versions, or without
    them); while it has none, it gets the default bundle, which holds no server's text. Cache keys are
    bundle paths, and versions are immutable, so one server's model can never answer for another and
    a switched version is loaded afresh.
    """

    def __init__(
        self,
        guilds_dir: Path,
        default_model: Path,
        cache_size: int = 8,
        threads: int = 2,
        max_batch_rows: int = 128,
        versions: ModelVersions | None = None,
        *,
        cache_mb: float | None = None,
        instant=None,
    ):
        self.guilds_dir, self.default_model, self.cache_size = Path(guilds_dir), Path(default_model), cache_size
        self.cache_bytes = int(cache_mb * 1e6) if cache_mb is not None else None  # None: bounded by count only
        self.instant = instant  # bot.instant.InstantModels: servers' n-gram models of their own text
        self._sizes: dict[Path, int] = {}  # model_bytes of each cached model
        self._removed: dict[int, datetime | None] = {}  # the store's text_removed_at: read once, and at each forget
        self._read: dict[int, datetime] = {}  # without versions: when the bundle reload() served read its corpus
        self._served: dict[int, int] = {}  # bumped by a forget: answers decoded by an older model are decoded again
        self.versions = versions  # None: guilds/<id>/model is served as it is (no versions, no rollback)
        self.max_batch_rows = max_batch_rows
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="continuo-inference")
        self._cache: OrderedDict[Path, LanguageModel] = OrderedDict()
        self._loading: dict[Path, asyncio.Future] = {}
        self._waiting: dict[tuple, list[tuple[str, asyncio.Future, int]]] = {}  # (model, options) -> seeds to continue
        self._arrivals = itertools.count()  # each waiting seed's place in line (Turns)
        self._decoders: set[asyncio.Task] = set()  # referenced, so the loop cannot drop them half-way
        # batches over one bundle (its option sets, its members' voices) take turns, where side by side on the
        # inference threads they contended for the interpreter (an n-gram model decodes in Python) and slowed each
        # other; other bundles' batches still run alongside
        self._bundle_turns: dict[object, Turns] = {}
        self._voices: OrderedDict[tuple, tuple[tuple[str, ...], LanguageModel]] = OrderedDict()
        # (bundle, server, member) -> (the messages it counted, the model bent toward them)
        self._voice_epoch: dict[tuple[int, int], int] = {}  # bumped by stop_voice: answers in it are dropped
        self._building: dict[tuple, tuple[tuple[str, ...], asyncio.Future]] = {}  # voices being built, as _voices
        self._asked = 0  # asked-for continuations being decoded (generate(asked=True))
        self._none_asked = asyncio.Event()  # set while there are none: unasked turns go then (after_asked)
        self._none_asked.set()

    def bundle_path(self, guild_id: int) -> Path:
        return self.guilds_dir / str(int(guild_id)) / "model"

    def checkpoint_path(self, guild_id: int) -> Path:
        return self.guilds_dir / str(int(guild_id)) / "checkpoint"

    def has_own_model(self, guild_id: int) -> bool:
        """As far as this process knows without asking the store (bundle_for() asks)."""
        pointer = self.versions.known(guild_id) if self.versions is not None else None
        if pointer is not None:
            return pointer.version is not None
        return self.bundle_path(guild_id).is_dir()

    async def bundle_for(self, guild_id: int) -> Path:
        """The bundle that answers for the server now.

        After a forget, until a model trained from the corpus without that text is in use, that is the
        server's instant model counted without it (or the default one): never a model that saw the text.
        While a server has no trained model of its own, its instant model answers in its own voice.
        """
        instant = self.instant.current(guild_id) if self.instant is not None else None
        trained = await self._trained_bundle_for(guild_id) if await self.trained_may_answer(guild_id) else None
        return trained or instant or self.default_model

    async def _trained_bundle_for(self, guild_id: int) -> Path | None:
        pointer = await self.versions.pointer(guild_id) if self.versions is not None else None
        if self.versions is not None and pointer is not None:  # once published, its pointer decides (None: default)
            if pointer.version is None:
                return None
            try:
                return await self.versions.local_bundle(guild_id)  # None: switched back meanwhile
            except (BundleError, OSError) as e:
                raise NoModel(
                    f"this server's model cannot be fetched ({e}); an admin can run /model rollback or /train again"
                ) from None
        own = self.bundle_path(guild_id)
        return own if own.is_dir() else None

    async def trained_may_answer(self, guild_id: int) -> bool:
        """The forget rule (bot.forgetting) for the server's trained model: whether it read the corpus after
        text last left it. While it may not, the server's instant model counted without that text answers."""
        removed = await self.text_removed_at(guild_id)
        return removed is None or may_answer(await self._corpus_read_at(guild_id), removed)

    async def text_removed_at(self, guild_id: int) -> datetime | None:
        if guild_id not in self._removed:
            store = self.versions.store if self.versions is not None else None
            self._removed[guild_id] = await store.text_removed_at(guild_id) if store is not None else None
        return self._removed[guild_id]

    async def _corpus_read_at(self, guild_id: int) -> datetime | None:
        if self.versions is not None and await self.versions.pointer(guild_id) is not None:
            current = await self.versions.current(guild_id)
            return current.created_at if current is not None else None
        return self._read.get(guild_id)  # None: a bundle this process did not train, of unknown reading

    async def model_for(self, guild_id: int) -> LanguageModel:
        return await self._get(await self.bundle_for(guild_id))

    async def warm_up(self) -> None:
        """Import TensorFlow and load the default model now, while nothing waits on the event loop."""
        try:
            await self._get(self.default_model)
        except NoModel as e:
            log.warning("%s", e)

    async def _get(self, path: Path) -> LanguageModel:
        model = self._cache.get(path)
        if model is not None:
            self._cache.move_to_end(path)
            metrics.MODEL_CACHE_HITS.inc()
            return model
        metrics.MODEL_CACHE_MISSES.inc()
        pending = self._loading.get(path)
        if pending is None:  # one load per bundle, however many requests wait for it
            pending = self._loading[path] = asyncio.ensure_future(self._load(path))
            pending.add_done_callback(lambda _: self._loading.pop(path, None))
        return await asyncio.shield(pending)

    async def _load(self, path: Path) -> LanguageModel:
        try:
            model = await self.run(_load_warm, path)
        except BundleError as e:
            if path == self.default_model:
                raise NoModel(
                    "this server has no model yet and the default model is missing; "
                    "an admin can add text with /corpus and run /train"
                ) from None
            raise NoModel(f"this server's model cannot be loaded ({e}); an admin can run /train again") from None
        self._put(path, model)
        return model

    def _put(self, path: Path, model: LanguageModel) -> None:
        self._cache[path] = model
        self._cache.move_to_end(path)
        self._sizes[path] = model_bytes(model)
        while len(self._cache) > 1 and (
            len(self._cache) > self.cache_size or self.cache_bytes is not None and self.cached_bytes > self.cache_bytes
        ):
            # least recently used first, n-gram-only models before neural ones: they load again in milliseconds,
            # where a neural model takes a second or more and leaves compiled code in the process at each load
            older = [p for p in self._cache if p != path]  # the newest always stays
            dropped = next((p for p in older if self._cache[p].model is None), older[0])
            del self._cache[dropped]
            self._sizes.pop(dropped, None)
            metrics.MODEL_CACHE_EVICTIONS.inc()
            log.info("dropped %s from the model cache", dropped)
        metrics.MODEL_CACHE_BYTES.set(self.cached_bytes)
        metrics.MODEL_CACHE_MODELS.set(len(self._cache))

    @property
    def cached_bytes(self) -> int:
        return sum(self._sizes.values())

    # --- forgetting
    async def forgot(self, guild_id: int) -> None:
        """Text left the server's corpus (the store recorded when): from now on no model that read it answers,
        and answers being decoded by one are decoded again. A restart reads the same record."""
        self._removed.pop(guild_id, None)
        await self.text_removed_at(guild_id)
        self._served[guild_id] = self._served.get(guild_id, 0) + 1
        for key in [k for k in self._voices if k[1] == guild_id]:  # built on a model that saw the text
            del self._voices[key]
        for key in [k for k in self._building if k[1] == guild_id]:
            del self._building[key]
        if self.instant is not None:
            self.instant.discard(guild_id)

    # --- members' voices
    async def voice_model(self, voice: Voice) -> LanguageModel:
        """The server's model bent toward the member's own messages (core's with_voice), built off the event loop
        and kept while the model and their consent stay the same and their messages only grow by a few
        (still_serves): a removed or edited message is never served from a voice counted before. Requests that
        come while it is built wait for that build."""
        path = await self.bundle_for(voice.guild_id)
        key = (path, voice.guild_id, voice.member_id)
        built = self._voices.get(key)
        if built is not None and still_serves(built[0], voice.texts):
            self._voices.move_to_end(key)
            return built[1]
        building = self._building.get(key)
        if building is None or not still_serves(building[0], voice.texts):
            building = self._building[key] = (voice.texts, asyncio.ensure_future(self._build_voice(key, voice)))
            building[1].add_done_callback(functools.partial(self._built, key, building))
        return await asyncio.shield(building[1])  # one asker cancelled does not cancel the others' build

    async def _build_voice(self, key: tuple, voice: Voice) -> LanguageModel:
        who = (voice.guild_id, voice.member_id)
        epoch, served = self._voice_epoch.get(who, 0), self._served.get(voice.guild_id, 0)
        base = await self._get(key[0])
        model = await self.run(base.with_voice, list(voice.texts))
        if self._voice_epoch.get(who, 0) != epoch:
            raise VoiceWithdrawn("that member has just stopped sharing their voice")
        if self._served.get(voice.guild_id, 0) == served:  # not kept if text left the server meanwhile (forgot)
            self._voices[key] = (voice.texts, model)
            self._voices.move_to_end(key)
            while len(self._voices) > VOICES_KEPT:
                self._voices.popitem(last=False)
        return model

    def _built(self, key: tuple, building: tuple, build: asyncio.Future) -> None:
        if self._building.get(key) is building:
            del self._building[key]
        if not build.cancelled():
            build.exception()  # retrieved: a failed build that no asker awaits any more is not logged as lost

    def stop_voice(self, guild_id: int, member_id: int) -> None:
        """From now on no answer uses the member's voice in that server: built ones are dropped, and answers being
        decoded in it are not sent."""
        self._voice_epoch[(guild_id, member_id)] = self._voice_epoch.get((guild_id, member_id), 0) + 1
        for key in [k for k in self._voices if k[1:3] == (guild_id, member_id)]:
            del self._voices[key]
        for key in [k for k in self._building if k[1:3] == (guild_id, member_id)]:
            del self._building[key]  # its askers get VoiceWithdrawn; later ones start another build

    async def rebuild_instant(self, guild_id: int) -> Path | None:
        """Count the server's instant model from its corpus now, and load it before it answers."""
        if self.instant is None:
            return None
        path = await self.instant.rebuild(guild_id)
        if path is not None:
            await self._get(path)
        return path

    async def reload(self, guild_id: int, trained_from: datetime | None = None) -> LanguageModel:
        """Make the server's newly trained bundle (at bundle_path) its model: published as a new version when
        versioned, then loaded and swapped in. Requests never see a half-loaded model.

        `trained_from`: when the training read its corpus; the forget rule serves it only if that was after
        the server's last forget (bot.forgetting).
        """
        staged = self.bundle_path(guild_id)
        if self.versions is not None and staged.is_dir():
            await self.versions.publish(guild_id, staged, corpus_read_at=trained_from)
            await asyncio.to_thread(shutil.rmtree, staged, True)  # the published version is the model now
        elif trained_from is not None:
            self._read[guild_id] = trained_from
        path = await self.bundle_for(guild_id)
        model = await self.run(_load_warm, path)
        self._put(path, model)
        return model

    async def run(self, fn, *args):
        """Run CPU-heavy model work on the inference threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def after_asked(self, at_most_s: float) -> None:
        """Wait until no asked-for continuation is being decoded, for at most `at_most_s`: unasked turns (chime-ins)
        take the time nobody waits on, and still come under a load that never ends."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_asked.wait(), at_most_s)

    async def generate(
        self, guild_id: int, seed: str, config: GenerationConfig, voice: Voice | None = None, asked: bool = True
    ) -> list[str]:
        """Continuations of `seed` by the server's model (bent toward a member's `voice`, one of that server's).

        Requests for the same model and options that arrive while one is being decoded wait for it,
        then are decoded together: one forward pass per step for all of them, since a row costs little
        next to a pass (bench/results/bot_load.md compares it with one request at a time). `asked`: someone
        waits for it (after_asked counts these).
        """
        if voice is not None and voice.guild_id != guild_id:
            raise ValueError("a member's voice is only ever used in the server it was shared in")
        if not asked:
            return await self._generate(guild_id, seed, config, voice)
        self._asked += 1
        self._none_asked.clear()
        try:
            return await self._generate(guild_id, seed, config, voice)
        finally:
            self._asked -= 1
            if not self._asked:
                self._none_asked.set()

    async def _generate(self, guild_id: int, seed: str, config: GenerationConfig, voice: Voice | None) -> list[str]:
        while True:
            served = self._served.get(guild_id, 0)
            who = (guild_id, voice.member_id) if voice is not None else None
            epoch = self._voice_epoch.get(who, 0) if who is not None else 0
            model = await self.voice_model(voice) if voice is not None else await self.model_for(guild_id)
            key = (id(model), astuple(config))
            done = asyncio.get_running_loop().create_future()
            waiting = self._waiting.setdefault(key, [])
            waiting.append((seed, done, next(self._arrivals)))
            if len(waiting) == 1:
                task = asyncio.create_task(self._decode_waiting(key, model, config))
                self._decoders.add(task)
                task.add_done_callback(self._decoders.discard)
            result = await done
            if who is not None and self._voice_epoch.get(who, 0) != epoch:
                raise VoiceWithdrawn("that member has just stopped sharing their voice")
            if self._served.get(guild_id, 0) == served:
                return result
            if voice is not None:  # its messages were read before the forget, and may hold what it removed
                raise TextRemoved(
                    "text was removed from this server while this answer was written in a member's voice: ask again"
                )
            # the server's model changed while this was decoded (a forget): decode it again with the new one

    async def _decode_waiting(self, key: tuple, model: LanguageModel, config: GenerationConfig) -> None:
        size = max(1, self.max_batch_rows // config.num_return_sequences)
        waiting = self._waiting[key]
        turns = self._bundle_turns.setdefault(model.path or id(model), Turns())  # a voice: its server's bundle
        turns.users += 1
        try:
            while waiting:
                await turns.take(waiting)  # more requests join the batch meanwhile
                try:
                    batch = waiting[:size]
                    metrics.DECODE_BATCH_ROWS.observe(len(batch) * config.num_return_sequences)
                    try:
                        results: list[list[str] | Exception] = list(
                            await self.run(model.generate_batch, [seed for seed, _, _ in batch], config)
                        )  # a bad seed fails itself
                    except Exception as e:  # noqa: BLE001 - each waiting request gets the error
                        results = [e] * len(batch)
                    del waiting[: len(batch)]
                finally:
                    turns.give()
                for (_, done, _), result in zip(batch, results, strict=True):
                    if done.done():
                        continue  # its asker gave up (cancelled)
                    if isinstance(result, Exception):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:
            del self._waiting[key]
            turns.users -= 1
            if not turns.users:
                del self._bundle_turns[model.path or id(model)]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.instant is not None:
            self.instant.close()


def _load_warm(path: Path) -> LanguageModel:
    """Load a bundle and compile its single-row forward pass, so the first /continue is not the slow one.

    Without XLA: the bot loads and drops models all day, and XLA's compiled code would stay behind each time.
    """
    return load(path, xla=False).warm_up()
