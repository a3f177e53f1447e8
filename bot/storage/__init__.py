"""The bot's storage: the Store interface and its SQLite default."""
from .base import CorpusEntry, CorpusStats, GuildSettings, Store, TrainingJobRecord
from .sqlite import SQLiteStore

__all__ = ["CorpusEntry", "CorpusStats", "GuildSettings", "SQLiteStore", "Store", "TrainingJobRecord"]
