"""Each server's model: its own bundle or the default one, loaded on demand, cached, run off the event loop."""
from __future__ import annotations

import asyncio
import logging
import shutil
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from pathlib import Path

from core import BundleError, GenerationConfig, LanguageModel, load

from .storage.versions import ModelVersions

log = logging.getLogger(__name__)


class NoModel(BundleError):
    """Neither the server's own model nor the default model can be loaded."""


class ModelService:
    """Loads bundles in worker threads, keeps the most recently used ones, and swaps in retrained ones.

    A server's model is its current published version (with `versions`: fetched from model storage
    into the local cache), else a bundle at guilds/<id>/model (trained before versions, or without
    them); while it has none, it gets the default bundle, which holds no server's text. Cache keys are
    bundle paths, and versions are immutable, so one server's model can never answer for another and
    a switched version is loaded afresh.
    """

    def __init__(self, guilds_dir: Path, default_model: Path, cache_size: int = 8, threads: int = 2,
                 max_batch_rows: int = 128, versions: ModelVersions | None = None):
        self.guilds_dir, self.default_model, self.cache_size = Path(guilds_dir), Path(default_model), cache_size
        self.versions = versions  # None: guilds/<id>/model is served as it is (no versions, no rollback)
        self.max_batch_rows = max_batch_rows
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="continuo-inference")
        self._cache: OrderedDict[Path, LanguageModel] = OrderedDict()
        self._loading: dict[Path, asyncio.Future] = {}
        self._waiting: dict[tuple, list[tuple[str, asyncio.Future]]] = {}  # (model, options) -> seeds to continue
        self._decoders: set[asyncio.Task] = set()  # referenced, so the loop cannot drop them half-way

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
        """The bundle that answers for the server now."""
        pointer = await self.versions.pointer(guild_id) if self.versions is not None else None
        if pointer is not None:  # once a server has published, its pointer decides (None: back to the default)
            if pointer.version is None:
                return self.default_model
            try:
                return await self.versions.local_bundle(guild_id)
            except (BundleError, OSError) as e:
                raise NoModel(f"this server's model cannot be fetched ({e}); an admin can run /model rollback "
                              "or /train again") from None
        own = self.bundle_path(guild_id)
        return own if own.is_dir() else self.default_model

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
            return model
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
                raise NoModel("this server has no model yet and the default model is missing; "
                              "an admin can add text with /corpus and run /train") from None
            raise NoModel(f"this server's model cannot be loaded ({e}); an admin can run /train again") from None
        self._put(path, model)
        return model

    def _put(self, path: Path, model: LanguageModel) -> None:
        self._cache[path] = model
        self._cache.move_to_end(path)
        while len(self._cache) > self.cache_size:
            dropped, _ = self._cache.popitem(last=False)
            log.info("dropped %s from the model cache", dropped)

    async def reload(self, guild_id: int) -> LanguageModel:
        """Make the server's newly trained bundle (at bundle_path) its model: published as a new version when
        versioned, then loaded and swapped in. Requests never see a half-loaded model."""
        staged = self.bundle_path(guild_id)
        if self.versions is not None and staged.is_dir():
            await self.versions.publish(guild_id, staged)
            await asyncio.to_thread(shutil.rmtree, staged, True)  # the published version is the model now
        path = await self.bundle_for(guild_id)
        model = await self.run(_load_warm, path)
        self._put(path, model)
        return model

    async def run(self, fn, *args):
        """Run CPU-heavy model work on the inference threads."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def generate(self, guild_id: int, seed: str, config: GenerationConfig) -> list[str]:
        """Continuations of `seed` by the server's model.

        Requests for the same model and options that arrive while one is being decoded wait for it,
        then are decoded together: one forward pass per step for all of them, since a row costs little
        next to a pass (bench/results/bot_load.md compares it with one request at a time).
        """
        model = await self.model_for(guild_id)
        key = (id(model), astuple(config))
        done = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(key, [])
        waiting.append((seed, done))
        if len(waiting) == 1:
            task = asyncio.create_task(self._decode_waiting(key, model, config))
            self._decoders.add(task)
            task.add_done_callback(self._decoders.discard)
        return await done

    async def _decode_waiting(self, key: tuple, model: LanguageModel, config: GenerationConfig) -> None:
        size = max(1, self.max_batch_rows // config.num_return_sequences)
        waiting = self._waiting[key]
        while waiting:
            batch = waiting[:size]
            try:
                results: list[list[str] | Exception] = list(
                    await self.run(model.generate_batch, [seed for seed, _ in batch], config))  # a bad seed fails itself
            except Exception as e:  # noqa: BLE001 - each waiting request gets the error
                results = [e] * len(batch)
            del waiting[:len(batch)]
            for (_, done), result in zip(batch, results):
                if done.done():
                    continue  # its asker gave up (cancelled)
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)
        del self._waiting[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _load_warm(path: Path) -> LanguageModel:
    """Load a bundle and compile its single-row forward pass, so the first /continue is not the slow one."""
    return load(path).warm_up()
