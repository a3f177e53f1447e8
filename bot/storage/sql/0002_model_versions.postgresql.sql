-- versioned models: immutable published versions and the pointer to each server's current one
-- a pointer whose version is NULL: the server went back to the default model (its versions were forgotten)
CREATE TABLE model_versions (
    guild_id BIGINT NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    val_perplexity DOUBLE PRECISION,
    tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, version)
);
CREATE SEQUENCE model_pointer_seq;
CREATE TABLE model_pointers (
    guild_id BIGINT PRIMARY KEY REFERENCES guilds(id) ON DELETE CASCADE,
    version TEXT,
    seq BIGINT NOT NULL,
    switched_at TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (guild_id, version) REFERENCES model_versions (guild_id, version)
);
CREATE INDEX pointers_by_seq ON model_pointers (seq);
