"""Each server's model: which bundle answers for it now, its members' voices, and its continuations decoded."""

from __future__ import annotations

import asyncio
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from core import BundleError, GenerationConfig, LanguageModel

from .batching import BatchedDecoder
from .forgetting import may_answer
from .model_cache import ModelCache, NoModel
from .storage.versions import ModelVersions
from .voice_models import TextRemoved, Voice, VoiceModels, VoiceWithdrawn

__all__ = ["ModelService", "NoModel", "TextRemoved", "Voice", "VoiceWithdrawn"]

log = logging.getLogger(__name__)


class ModelService:
    """Which bundle answers for each server now, and its answers: the front of the bot's models.

    Its parts each do one job: `cache` (bot.model_cache) loads bundles on the inference threads and keeps the
    most recently used, `voices` (bot.voice_models) bends a server's model toward a member who shared their
    voice, and `decoder` (bot.batching) decodes requests for one model together. This class decides which
    bundle answers (the forget rule, versions, the instant model), swaps in retrained ones and decodes again
    what a forget took out of service.

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
        self.guilds_dir, self.default_model = Path(guilds_dir), Path(default_model)
        self.instant = instant  # bot.instant.InstantModels: servers' n-gram models of their own text
        self.versions = versions  # None: guilds/<id>/model is served as it is (no versions, no rollback)
        self._removed: dict[int, datetime | None] = {}  # the store's text_removed_at: read once, and at each forget
        self._read: dict[int, datetime] = {}  # without versions: when the bundle reload() served read its corpus
        self._served: dict[int, int] = {}  # bumped by a forget: answers decoded by an older model are decoded again
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="continuo-inference")
        cache_bytes = int(cache_mb * 1e6) if cache_mb is not None else None  # None: bounded by count only
        self.cache = ModelCache(self._on_threads, self.default_model, cache_size, cache_bytes)
        self.decoder = BatchedDecoder(self._on_threads, max_batch_rows)
        self.voices = VoiceModels(self.cache.get, self._on_threads)

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
        return await self.cache.get(await self.bundle_for(guild_id))

    async def warm_up(self) -> None:
        """Import TensorFlow and load the default model now, while nothing waits on the event loop."""
        try:
            await self.cache.get(self.default_model)
        except NoModel as e:
            log.warning("%s", e)

    @property
    def cached_bytes(self) -> int:
        return self.cache.cached_bytes

    # --- forgetting
    async def forgot(self, guild_id: int) -> None:
        """Text left the server's corpus (the store recorded when): from now on no model that read it answers,
        and answers being decoded by one are decoded again. A restart reads the same record."""
        self._removed.pop(guild_id, None)
        await self.text_removed_at(guild_id)
        self._served[guild_id] = self._served.get(guild_id, 0) + 1
        self.voices.forgot(guild_id)
        if self.instant is not None:
            self.instant.discard(guild_id)

    # --- members' voices
    async def voice_model(self, voice: Voice) -> LanguageModel:
        """The model that answers for the server now, bent toward the member's own messages (bot.voice_models)."""
        return await self.voices.model(await self.bundle_for(voice.guild_id), voice)

    def stop_voice(self, guild_id: int, member_id: int) -> None:
        """From now on no answer uses the member's voice in that server: built ones are dropped, and answers being
        decoded in it are not sent."""
        self.voices.stop(guild_id, member_id)

    async def rebuild_instant(self, guild_id: int) -> Path | None:
        """Count the server's instant model from its corpus now, and load it before it answers."""
        if self.instant is None:
            return None
        path = await self.instant.rebuild(guild_id)
        if path is not None:
            await self.cache.get(path)
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
        return await self.cache.load_again(await self.bundle_for(guild_id))

    async def run(self, fn, *args):
        """Run CPU-heavy model work on the inference threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _on_threads(self, fn, *args):
        return await self.run(fn, *args)  # looked up at each call: a test may wrap run()

    async def after_asked(self, at_most_s: float) -> None:
        """Wait until no asked-for continuation is being decoded, for at most `at_most_s` (bot.batching)."""
        await self.decoder.after_asked(at_most_s)

    async def generate(
        self, guild_id: int, seed: str, config: GenerationConfig, voice: Voice | None = None, asked: bool = True
    ) -> list[str]:
        """Continuations of `seed` by the server's model (bent toward a member's `voice`, one of that server's),
        decoded together with other requests for the same model and options (bot.batching). `asked`: someone
        waits for it (after_asked counts these). An answer decoded by a model that a forget took out of service
        is decoded again by the one serving now, and one in a voice withdrawn meanwhile is not given."""
        if voice is not None and voice.guild_id != guild_id:
            raise ValueError("a member's voice is only ever used in the server it was shared in")
        if not asked:
            return await self._generate(guild_id, seed, config, voice)
        with self.decoder.asked():
            return await self._generate(guild_id, seed, config, voice)

    async def _generate(self, guild_id: int, seed: str, config: GenerationConfig, voice: Voice | None) -> list[str]:
        while True:
            served = self._served.get(guild_id, 0)
            epoch = self.voices.epoch(guild_id, voice.member_id) if voice is not None else 0
            model = await self.voice_model(voice) if voice is not None else await self.model_for(guild_id)
            result = await self.decoder.decode(model, seed, config)
            if voice is not None and self.voices.epoch(guild_id, voice.member_id) != epoch:
                raise VoiceWithdrawn("that member has just stopped sharing their voice")
            if self._served.get(guild_id, 0) == served:
                return result
            if voice is not None:  # its messages were read before the forget, and may hold what it removed
                raise TextRemoved(
                    "text was removed from this server while this answer was written in a member's voice: ask again"
                )
            # the server's model changed while this was decoded (a forget): decode it again with the new one

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.instant is not None:
            self.instant.close()
