"""The bot's extensions, one per area; each ends with `async def setup(bot)`."""
