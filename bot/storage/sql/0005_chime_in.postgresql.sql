-- a server's chance (percent) that the bot adds the next turn after a member's message in a learned channel
ALTER TABLE guild_settings ADD COLUMN chime_in DOUBLE PRECISION;
