-- members who shared their voice in a server: only they can be imitated there (/voice share, /voice stop)
CREATE TABLE shared_voices (
    guild_id INTEGER NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL,
    shared_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, member_id)
);
