-- versioned models: immutable published versions and the pointer to each server's current one
-- a pointer whose version is NULL: the server went back to the default model (its versions were forgotten)
CREATE TABLE model_versions (
    guild_id INTEGER NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    val_perplexity REAL,
    tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, version)
);
CREATE TABLE model_pointers (
    guild_id INTEGER PRIMARY KEY REFERENCES guilds(id) ON DELETE CASCADE,
    version TEXT,
    seq INTEGER NOT NULL,
    switched_at TEXT NOT NULL,
    FOREIGN KEY (guild_id, version) REFERENCES model_versions (guild_id, version)
);
CREATE INDEX pointers_by_seq ON model_pointers (seq);
