"""One per-user cooldown shared by every way of asking for a continuation."""

from __future__ import annotations

from discord import Interaction, app_commands


class Cooldowns:
    """At most `uses` continuations per user per `seconds` in each server."""

    def __init__(self, uses: int, seconds: float):
        self.uses, self.seconds = uses, seconds
        self._buckets: dict[tuple[int | None, int], app_commands.Cooldown] = {}

    def hit(self, guild_id: int | None, user_id: int) -> float | None:
        """Count one use; the seconds to wait when the user is over the limit, else None."""
        if len(self._buckets) > 10_000:  # forget users whose windows have passed
            self._buckets = {k: b for k, b in self._buckets.items() if b.get_tokens() < b.rate}
        bucket = self._buckets.setdefault((guild_id, user_id), app_commands.Cooldown(self.uses, self.seconds))
        return bucket.update_rate_limit()

    def check(self, interaction: Interaction) -> bool:
        """An app-command check: raises CommandOnCooldown, which the error handler words for the user."""
        retry_after = self.hit(interaction.guild_id, interaction.user.id)
        if retry_after is not None:
            raise app_commands.CommandOnCooldown(
                self._buckets[(interaction.guild_id, interaction.user.id)], retry_after
            )
        return True
