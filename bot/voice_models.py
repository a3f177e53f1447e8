"""Members' voices as models: a server's model bent toward one member's own messages, built once and kept a while."""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from core import ContinuoError, LanguageModel

VOICES_KEPT = 16  # members' voices kept built; one is counted again in well under a second
VOICE_RECOUNT_SHARE = 0.1  # a built voice is counted again once the member's messages grew by this share of it
VOICE_RECOUNT_MESSAGES = 5  # or by this many, whichever is more


class VoiceWithdrawn(ContinuoError):
    """The member stopped sharing their voice (or was forgotten) while an answer in it was decoded."""


class TextRemoved(ContinuoError):
    """Text left the server while an answer in a member's voice was decoded from messages read before."""


@dataclass(frozen=True)
class Voice:
    """A member who shared their voice in a server, and their own messages there (oldest first)."""

    guild_id: int
    member_id: int
    texts: tuple[str, ...]


def still_serves(counted: tuple[str, ...], texts: tuple[str, ...]) -> bool:
    """Whether a voice counted from `counted` may answer for a member whose messages are now `texts`: only while
    none it counted was edited or removed since (they are still the first of `texts`, oldest first), and until a
    few new ones came. A voice is not counted again for every message its member writes."""
    grown = len(texts) - len(counted)
    return (
        0 <= grown < max(VOICE_RECOUNT_MESSAGES, VOICE_RECOUNT_SHARE * len(counted))
        and texts[: len(counted)] == counted
    )


class VoiceModels:
    """Voices built off the event loop (core's LanguageModel.with_voice on the inference threads, `run`) over the
    bundle that answers for the server (`base(path)` loads it), and kept while that bundle and the member's consent
    stay the same and their messages only grow by a few (still_serves): a removed or edited message is never served
    from a voice counted before. Requests that come while one is built wait for that build."""

    def __init__(self, base: Callable[[Path], Awaitable[LanguageModel]], run: Callable[..., Awaitable]):
        self.base, self.run = base, run
        self._built: OrderedDict[tuple, tuple[tuple[str, ...], LanguageModel]] = OrderedDict()
        # (bundle, server, member) -> (the messages it counted, the model bent toward them)
        self._building: dict[tuple, tuple[tuple[str, ...], asyncio.Future]] = {}  # voices being built, as _built
        self._epochs: dict[tuple[int, int], int] = {}  # bumped by stop: answers in that voice are dropped
        self._forgets: dict[int, int] = {}  # bumped by forgot: a voice built meanwhile is not kept

    def epoch(self, guild_id: int, member_id: int) -> int:
        """Changes when the member withdraws their voice (stop): an answer decoded in it before is not sent."""
        return self._epochs.get((guild_id, member_id), 0)

    async def model(self, bundle: Path, voice: Voice) -> LanguageModel:
        """The model of `bundle` bent toward the member's messages."""
        key = (bundle, voice.guild_id, voice.member_id)
        built = self._built.get(key)
        if built is not None and still_serves(built[0], voice.texts):
            self._built.move_to_end(key)
            return built[1]
        building = self._building.get(key)
        if building is None or not still_serves(building[0], voice.texts):
            building = self._building[key] = (voice.texts, asyncio.ensure_future(self._build(key, voice)))
            building[1].add_done_callback(functools.partial(self._landed, key, building))
        return await asyncio.shield(building[1])  # one asker cancelled does not cancel the others' build

    async def _build(self, key: tuple, voice: Voice) -> LanguageModel:
        epoch, forgets = self.epoch(voice.guild_id, voice.member_id), self._forgets.get(voice.guild_id, 0)
        base = await self.base(key[0])
        model = await self.run(base.with_voice, list(voice.texts))
        if self.epoch(voice.guild_id, voice.member_id) != epoch:
            raise VoiceWithdrawn("that member has just stopped sharing their voice")
        if self._forgets.get(voice.guild_id, 0) == forgets:  # not kept if text left the server meanwhile
            self._built[key] = (voice.texts, model)
            self._built.move_to_end(key)
            while len(self._built) > VOICES_KEPT:
                self._built.popitem(last=False)
        return model

    def _landed(self, key: tuple, building: tuple, build: asyncio.Future) -> None:
        if self._building.get(key) is building:
            del self._building[key]
        if not build.cancelled():
            build.exception()  # retrieved: a failed build that no asker awaits any more is not logged as lost

    def stop(self, guild_id: int, member_id: int) -> None:
        """From now on no answer uses the member's voice in that server: built ones are dropped, and answers being
        decoded in it are not sent (epoch)."""
        self._epochs[(guild_id, member_id)] = self.epoch(guild_id, member_id) + 1
        self._drop(lambda key: key[1:3] == (guild_id, member_id))  # its askers get VoiceWithdrawn

    def forgot(self, guild_id: int) -> None:
        """Text left the server: voices built on a model that saw it, or from messages read before, go."""
        self._forgets[guild_id] = self._forgets.get(guild_id, 0) + 1
        self._drop(lambda key: key[1] == guild_id)

    def _drop(self, which: Callable[[tuple], bool]) -> None:
        for key in [k for k in self._built if which(k)]:
            del self._built[key]
        for key in [k for k in self._building if which(k)]:
            del self._building[key]  # later askers start another build

    def __contains__(self, who: tuple[int, int]) -> bool:
        """Whether a voice of (server, member) is built and kept."""
        return any(key[1:3] == who for key in self._built)
