-- servers, settings, learned channels, corpus, training jobs
CREATE TABLE guilds (
    id INTEGER PRIMARY KEY,
    base_corpus TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE guild_settings (
    guild_id INTEGER PRIMARY KEY REFERENCES guilds(id) ON DELETE CASCADE,
    temperature REAL,
    words INTEGER,
    reply_on_mention INTEGER,
    retrain_growth REAL
);
CREATE TABLE learned_channels (
    guild_id INTEGER NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
CREATE TABLE corpus_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id INTEGER NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    message_id INTEGER,
    channel_id INTEGER,
    author_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'file')),
    name TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (guild_id, message_id)
);
CREATE INDEX corpus_by_author ON corpus_messages (guild_id, author_id);
CREATE INDEX corpus_by_channel ON corpus_messages (guild_id, channel_id);
CREATE TABLE training_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id INTEGER NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    epochs INTEGER NOT NULL,
    requested_by INTEGER NOT NULL,
    channel_id INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    corpus_tokens INTEGER NOT NULL DEFAULT 0,
    val_perplexity REAL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_by_guild ON training_jobs (guild_id, id);
CREATE INDEX jobs_by_status ON training_jobs (status);
