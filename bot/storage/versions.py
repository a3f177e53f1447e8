"""Each server's model versions: publish a trained bundle, switch the pointer, roll back, keep a few, learn of switches.

The order that keeps readers safe: upload an immutable version to model storage, record it, switch
the server's pointer (one row), then drop old versions beyond the retention setting. A process that
dies anywhere before the switch leaves the previous version current. Other processes learn of a
switch from the store (NOTIFY on PostgreSQL, polling on SQLite) and fetch the new version into their
local cache before serving it.

    versions = ModelVersions(store, open_bundle_storage(url, cache_dir), keep=3)
    await versions.start()                          # follow switches made by other processes
    await versions.publish(guild_id, bundle_dir)    # a training's result becomes the server's model
    path = await versions.local_bundle(guild_id)    # what to serve: a local folder, or None (no version)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from core import BundleError, BundleStorage, ContinuoError, read_card

from ..forgetting import may_answer
from .base import ModelPointer, ModelVersion, Store, utcnow

log = logging.getLogger(__name__)

Listener = Callable[[int, str | None], Awaitable[None]]


class NoEarlierVersion(ContinuoError):
    """/model rollback on a server with nothing older to go back to."""


class ModelVersions:
    """Publishes, switches and finds servers' model versions; keeps what this process knows of the pointers fresh."""

    def __init__(self, store: Store, storage: BundleStorage, keep: int = 3, poll_s: float = 2.0):
        self.store, self.storage = store, storage
        self.keep = max(1, keep)  # versions kept per server, the current one included
        self.poll_s = poll_s  # SQLite: how often the pointers are polled
        self._pointers: dict[int, ModelPointer | None] = {}  # as last read or told; None: never published
        self._local: dict[
            tuple[int, str], Path
        ] = {}  # versions fetched into the local cache: no thread hop per request
        self._records: dict[tuple[int, str], ModelVersion] = {}  # as published or read: immutable
        self._listeners: list[Listener] = []
        self._watcher: asyncio.Task | None = None

    # --- reading
    async def pointer(self, guild_id: int) -> ModelPointer | None:
        """The server's pointer (None: it never published a version), read once and then kept fresh by start()."""
        if guild_id not in self._pointers:
            self._pointers[guild_id] = await self.store.current_model(guild_id)
        return self._pointers[guild_id]

    def known(self, guild_id: int) -> ModelPointer | None:
        """The pointer as this process last read or was told of it, without asking the store."""
        return self._pointers.get(guild_id)

    async def current(self, guild_id: int) -> ModelVersion | None:
        """The record of the server's current version (None: it serves no version of its own)."""
        pointer = await self.pointer(guild_id)
        if pointer is None or pointer.version is None:
            return None
        if (guild_id, pointer.version) not in self._records:
            for record in await self.store.model_versions(guild_id):
                self._records[(guild_id, record.version)] = record
        return self._records.get((guild_id, pointer.version))

    async def local_bundle(self, guild_id: int) -> Path | None:
        """A local folder holding the server's current version; None when it has no current version."""
        pointer = await self.pointer(guild_id)
        if pointer is None or pointer.version is None:
            return None
        return await self._fetch(guild_id, pointer.version)

    async def _fetch(self, guild_id: int, version: str) -> Path:
        key = (guild_id, version)
        if key not in self._local:
            self._local[key] = await asyncio.to_thread(self.storage.fetch, str(guild_id), version)
        return self._local[key]

    # --- writing
    async def publish(self, guild_id: int, bundle: str | Path, corpus_read_at: datetime | None = None) -> ModelVersion:
        """Upload a trained bundle as a new version and make it the server's current model.

        `corpus_read_at`: when its training read the corpus (default: now); the forget rule reads it.
        """
        card = await asyncio.to_thread(read_card, bundle)
        version = await asyncio.to_thread(self.storage.publish, bundle, str(guild_id))
        record = ModelVersion(guild_id, version, corpus_read_at or utcnow(), card.val_perplexity, card.tokens)
        await self.store.add_model_version(record)
        self._records[(guild_id, version)] = record
        await self._switch(guild_id, version)
        await self.prune(guild_id)
        return record

    async def rollback(self, guild_id: int) -> ModelVersion:
        """Make the version before the current one current again; never one that learned text forgotten since."""
        current = await self.store.current_model(guild_id)
        versions = await self.store.model_versions(guild_id)
        removed = await self.store.text_removed_at(guild_id)
        earlier = [
            v for v in versions if current is not None and current.version is not None and v.version < current.version
        ]
        allowed = [v for v in earlier if may_answer(v.created_at, removed)]
        if not allowed:
            raise NoEarlierVersion(
                "the earlier model versions learned from text that was removed since; /train makes a new one"
                if earlier
                else "this server has no earlier model version to go back to"
                if versions
                else "this server has no model of its own yet: /train makes one"
            )
        await self._fetch(guild_id, allowed[-1].version)  # it must still be there
        await self._switch(guild_id, allowed[-1].version)
        return allowed[-1]

    async def forget(self, guild_id: int) -> None:
        """Back to the default model, and every version deleted: none can be rolled back to (forgotten text)."""
        await self._switch(guild_id, None)
        versions = [v.version for v in await self.store.model_versions(guild_id)]
        await self._remove(guild_id, versions)

    async def prune(self, guild_id: int) -> None:
        """Keep the newest `keep` versions and the current one; delete the rest, versions that read the corpus
        before text was removed from it (they learned it), and leftovers of failed uploads."""
        records = await self.store.model_versions(guild_id)
        versions = [v.version for v in records]
        current = await self.store.current_model(guild_id)
        removed = await self.store.text_removed_at(guild_id)
        old = [
            v.version
            for i, v in enumerate(records)
            if (i < len(records) - self.keep or not may_answer(v.created_at, removed))
            and (current is None or v.version != current.version)
        ]
        await self._remove(guild_id, old)
        newest = versions[-1] if versions else ""
        stored = await asyncio.to_thread(self.storage.versions, str(guild_id))
        # never recorded, and older than a recorded one: an upload that died before its switch (a newer one
        # may be another process's upload in progress)
        for orphan in [v for v in stored if v not in versions and v < newest]:
            await asyncio.to_thread(self.storage.delete, str(guild_id), orphan)

    async def _remove(self, guild_id: int, versions: list[str]) -> None:
        if not versions:
            return
        await self.store.remove_model_versions(guild_id, versions)  # first: nobody switches to them any more
        for version in versions:
            self._local.pop((guild_id, version), None)
            self._records.pop((guild_id, version), None)
            await asyncio.to_thread(self.storage.delete, str(guild_id), version)

    async def _switch(self, guild_id: int, version: str | None) -> None:
        pointer = await self.store.switch_model(guild_id, version)
        await self._learn(pointer)

    # --- following other processes
    def on_switch(self, listener: Listener) -> None:
        """`await listener(guild_id, version)` after this process learned that a server's current version changed."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Follow other processes' switches: every one made after this returns is learned."""
        if self._watcher is None:
            since = await self.store.newest_model_seq()  # read here, not in the task: none slips in before it runs
            self._watcher = asyncio.create_task(self._watch(since), name="continuo-model-versions")

    async def _watch(self, since: int) -> None:
        async for pointer in self.store.watch_models(self.poll_s, since):
            known = self._pointers.get(pointer.guild_id)
            if known is not None and known.seq >= pointer.seq:
                continue  # this process made that switch itself, or a newer one is known
            if pointer.version is not None:
                try:  # fetched before it is served: the first request after the switch finds it local
                    await self._fetch(pointer.guild_id, pointer.version)
                except (BundleError, OSError) as e:
                    log.warning(
                        "guild %s: model version %s cannot be fetched: %s", pointer.guild_id, pointer.version, e
                    )
            await self._learn(pointer)

    async def catch_up(self, pointer: ModelPointer) -> None:
        """Learn `pointer`, just read from the store, unless a newer one is known: what the watcher does when
        news of the switch reaches it, at once. A pointer read before any version existed (None) is older."""
        known = self._pointers.get(pointer.guild_id)
        if known is None or known.seq < pointer.seq:
            await self._learn(pointer)

    async def _learn(self, pointer: ModelPointer) -> None:
        before = self._pointers.get(pointer.guild_id)
        self._pointers[pointer.guild_id] = pointer
        # the local copies of the new version and of the one requests may still be loading
        keep = {v for v in (pointer.version, before.version if before else None) if v}
        await asyncio.to_thread(self.storage.evict, str(pointer.guild_id), keep)
        for key in [k for k in self._local if k[0] == pointer.guild_id and k[1] not in keep]:
            del self._local[key]
        for listener in self._listeners:
            try:
                await listener(pointer.guild_id, pointer.version)
            except Exception:  # noqa: BLE001 - one listener's failure must not stop the others
                log.exception("a model switch listener failed")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
