-- when text was last removed from a server's corpus: no model version older than that is served or rolled back to
ALTER TABLE guilds ADD COLUMN text_removed_at TEXT;
