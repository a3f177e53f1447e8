"""What the bot stores, and the interface a database must offer to hold it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

Moment = Callable[[datetime | None], object]  # how a store writes a moment: as it is, or as text


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class GuildSettings:
    """A server's choices; each field is what the server gets until an admin changes it."""

    temperature: float = 0.8  # /continue's sampling temperature when none is given
    words: int = 30  # tokens /continue adds when no length is given
    reply_on_mention: bool = True  # continue the text of messages that mention the bot
    retrain_growth: float = 0.0  # retrain once the corpus grew by this share since the last training (0: never)
    chime_in: float = 0.0  # percent chance of adding the next turn after a member's message in a learned channel


@dataclass(frozen=True)
class CorpusEntry:
    """One piece of a server's corpus: a recorded message, or an uploaded text file."""

    guild_id: int
    author_id: int
    text: str
    message_id: int | None = None  # None for uploaded files
    channel_id: int | None = None
    name: str = ""  # the file's name, for uploads
    created_at: datetime = field(default_factory=utcnow)

    @property
    def kind(self) -> str:
        return "message" if self.message_id is not None else "file"

    def row(self, guild_id: int, when: Moment) -> tuple:
        """Its corpus_messages columns: guild_id, message_id, channel_id, author_id, kind, name, text, tokens,
        created_at (as `when` writes a moment for the database)."""
        from ..text import count_tokens

        fields = (self.message_id, self.channel_id, self.author_id, self.kind, self.name, self.text)
        return (guild_id, *fields, count_tokens(self.text), when(self.created_at))


@dataclass(frozen=True)
class CorpusStats:
    messages: int  # recorded messages
    files: int  # uploaded files
    tokens: int  # words and marks, as the model counts them (the base corpus not included)
    characters: int
    authors: int  # people whose messages are recorded
    channels: tuple[int, ...]  # learned channels
    base: str | None  # the bundled corpus the server starts from


@dataclass(frozen=True)
class TrainingJobRecord:
    """A /train run as stored: a restart finds the ones that never finished."""

    id: int
    guild_id: int
    status: str  # queued, running, succeeded, failed, interrupted
    epochs: int
    requested_by: int  # user id; 0 for an automatic retraining
    channel_id: int | None  # where progress was shown
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    corpus_tokens: int = 0  # corpus size it trained on
    val_perplexity: float | None = None
    error: str = ""

    def row(self, guild_id: int, when: Moment) -> tuple:
        """Its training_jobs columns but the id: guild_id, status, epochs, requested_by, channel_id, created_at,
        started_at, finished_at, corpus_tokens, val_perplexity, error."""
        moments = (when(self.created_at), when(self.started_at), when(self.finished_at))
        people = (self.status, self.epochs, self.requested_by, self.channel_id)
        return (guild_id, *people, *moments, self.corpus_tokens, self.val_perplexity, self.error)


UNFINISHED = ("queued", "running")


@dataclass(frozen=True)
class ModelVersion:
    """A published, immutable model of a server; its files live in model storage (core.BundleStorage)."""

    guild_id: int
    version: str  # the id model storage gave it; ids sort by publication time
    created_at: datetime = field(default_factory=utcnow)  # when its training read the corpus (bot.forgetting)
    val_perplexity: float | None = None
    tokens: int = 0  # corpus size it was trained on


@dataclass(frozen=True)
class ModelPointer:
    """Which version a server serves now: one row, switched in one statement."""

    guild_id: int
    version: str | None  # None: back to the default model (the server's versions were forgotten)
    seq: int  # grows with every switch, across all servers: watchers ask for what changed since


@dataclass
class GuildData:
    """Everything stored for one server, as `continuo bot migrate-store` moves it between stores."""

    guild_id: int
    created_at: datetime
    base_corpus: str | None
    settings: dict  # only the values an admin set; the rest stay GuildSettings' defaults
    channels: list[tuple[int, datetime]]  # learned channels and when
    corpus: list[CorpusEntry]  # oldest first
    jobs: list[TrainingJobRecord]  # oldest first; ids are the source store's (the target gives new ones)
    models: list[ModelVersion]  # oldest first
    current_model: str | None  # the version its pointer names
    text_removed_at: datetime | None = None  # the last forget (see Store.text_removed_at)
    voices: list[tuple[int, datetime]] = field(default_factory=list)  # members who shared their voice, and when


class Store(Protocol):
    """Everything the bot keeps, always keyed by server: one server never reads another's rows."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...  # raises unless the database answers (readiness)

    # servers and their settings
    async def guild_settings(self, guild_id: int) -> GuildSettings: ...
    async def update_guild_settings(self, guild_id: int, **changes) -> GuildSettings: ...
    async def base_corpus(self, guild_id: int) -> str | None: ...
    async def set_base_corpus(self, guild_id: int, name: str | None) -> None: ...

    # learned channels
    async def learn_channel(self, guild_id: int, channel_id: int) -> bool: ...
    async def unlearn_channel(self, guild_id: int, channel_id: int) -> bool: ...
    async def learned_channels(self, guild_id: int) -> list[int]: ...

    # the corpus
    async def record(self, entries: Sequence[CorpusEntry]) -> int: ...
    async def edit_message(self, guild_id: int, message_id: int, text: str) -> bool: ...
    async def remove_messages(self, guild_id: int, message_ids: Sequence[int]) -> int: ...
    async def forget_author(self, guild_id: int, author_id: int) -> tuple[int, int]: ...  # and stops their voice
    async def forget_channel(self, guild_id: int, channel_id: int) -> int: ...
    async def clear_corpus(self, guild_id: int) -> int: ...
    async def corpus_texts(self, guild_id: int) -> list[str]: ...
    async def corpus_stats(self, guild_id: int) -> CorpusStats: ...
    # when forget_author, forget_channel or clear_corpus last removed text: no model that read the corpus
    # before answers any more (bot.forgetting.may_answer)
    async def text_removed_at(self, guild_id: int) -> datetime | None: ...
    async def mark_text_removed(self, guild_id: int, at: datetime) -> None: ...

    # members' voices: only a member who shared theirs is imitated, from their own messages in that server
    async def share_voice(self, guild_id: int, member_id: int) -> bool: ...  # False: already shared
    async def stop_voice(self, guild_id: int, member_id: int) -> bool: ...  # False: was not shared
    async def voice_shared(self, guild_id: int, member_id: int) -> bool: ...
    async def member_texts(self, guild_id: int, member_id: int) -> list[str]: ...  # their messages, oldest first

    # training jobs
    async def add_job(
        self, guild_id: int, requested_by: int, channel_id: int | None, epochs: int, corpus_tokens: int
    ) -> TrainingJobRecord: ...
    async def update_job(self, job_id: int, **changes) -> None: ...
    async def last_job(self, guild_id: int, status: str | None = None) -> TrainingJobRecord | None: ...
    async def interrupt_unfinished_jobs(
        self, status: str | None = None, why: str = "interrupted by a restart"
    ) -> list[TrainingJobRecord]: ...
    # training jobs run by another process (bot.coordinator): every server's queue, and progress as JSON
    async def unfinished_jobs(self) -> list[TrainingJobRecord]: ...  # queued and running, oldest first
    async def set_job_progress(self, job_id: int, progress: str) -> None: ...
    async def job_progress(self, job_id: int) -> str | None: ...

    # model versions (bot.storage.versions.ModelVersions publishes, switches and rolls back with these)
    async def add_model_version(self, record: ModelVersion) -> None: ...
    async def model_versions(self, guild_id: int) -> list[ModelVersion]: ...  # oldest first
    async def current_model(self, guild_id: int) -> ModelPointer | None: ...
    async def switch_model(self, guild_id: int, version: str | None) -> ModelPointer: ...  # and tells watchers
    async def remove_model_versions(self, guild_id: int, versions: Sequence[str]) -> int: ...  # never the current one
    async def model_pointers_since(self, seq: int) -> list[ModelPointer]: ...
    async def newest_model_seq(self) -> int: ...  # of the last switch made (0: none yet)
    def watch_models(
        self, poll_s: float = 2.0, since: int | None = None
    ) -> AsyncIterator[ModelPointer]: ...  # switches after `since` (None: from now on), by any process

    # whole servers and the whole store
    async def guild_ids(self) -> list[int]: ...
    async def export_guild(self, guild_id: int) -> GuildData: ...
    async def import_guild(self, data: GuildData) -> None: ...  # refuses a server the store already holds
    async def backup(self, path: str) -> None: ...  # a consistent copy (or a ContinuoError naming the tool to use)
