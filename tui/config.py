"""The TUI's defaults: friendly decoding options and how much of each kind of suggestion to show."""

from __future__ import annotations

from dataclasses import dataclass, field

from core import GenerationConfig


def friendly_generation() -> GenerationConfig:
    """The core's readable sampling, a ghost text's length at a time: what the compose screen starts with."""
    return GenerationConfig.readable(max_new_tokens=12)


@dataclass(frozen=True)
class TuiConfig:
    generation: GenerationConfig = field(default_factory=friendly_generation)  # initial decoding options
    ghost_seed: int = 0  # sampling seed for ghost text when none is set, so a text always gets the same ghost
    candidates: int = 9  # next words listed, one per number key
    variants: int = 3  # continuations generated side by side
    suggestion_cache: int = 1024  # ghost texts remembered per model and decoding options
