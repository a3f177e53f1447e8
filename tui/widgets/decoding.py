"""Decoding controls: the core's generation options, validated as they are typed."""

from __future__ import annotations

from dataclasses import replace

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, Label

from core import DecodingError, GenerationConfig

NUMBER_FIELDS = {  # option -> parser; the labels are the core's option names
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "max_new_tokens": int,
    "seed": int,
}


def parse(name: str, raw: str):
    """The value typed for option `name`; a blank seed means a fresh random one each time."""
    raw = raw.strip()
    if name == "seed" and not raw:
        return None
    try:
        return NUMBER_FIELDS[name](raw)
    except ValueError:
        kind = "a whole number" if NUMBER_FIELDS[name] is int else "a number"
        raise DecodingError(f"{name} must be {kind}, got {raw!r}", name) from None


class DecodingControls(Vertical):
    """Edit temperature, top_k, top_p, max_new_tokens, seed and do_sample; valid edits post Changed."""

    DEFAULT_CSS = """
    DecodingControls {
        height: auto;
        border: round $primary 60%;
        border-title-color: $text-muted;
        padding: 0 1;
        & Horizontal { height: 1; }
        & Label.name { width: 15; color: $text-muted; }
        & Input { width: 1fr; }
        & Input.-invalid { color: $error; }
        & Checkbox { padding: 0; border: none; height: 1; }
        & #decoding-error { color: $error; height: auto; display: none; }
        & #decoding-error.-shown { display: block; }
    }
    """

    class Changed(Message):
        """The options are now `config`."""

        def __init__(self, config: GenerationConfig) -> None:
            super().__init__()
            self.config = config

    def __init__(self, config: GenerationConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.border_title = "Decoding"

    def compose(self) -> ComposeResult:
        for name in NUMBER_FIELDS:
            value = getattr(self.config, name)
            with Horizontal():
                yield Label(name, classes="name")
                yield Input(
                    "" if value is None else str(value),
                    id=name,
                    compact=True,
                    placeholder="random" if name == "seed" else "",
                )
        yield Checkbox("do_sample (off: greedy)", self.config.do_sample, id="do_sample", compact=True)
        yield Label("", id="decoding-error")

    def read(self) -> GenerationConfig:
        """The options as typed; raises DecodingError naming the first bad one."""
        values = {name: parse(name, self.query_one(f"#{name}", Input).value) for name in NUMBER_FIELDS}
        values["do_sample"] = self.query_one("#do_sample", Checkbox).value
        return GenerationConfig.make(replace(self.config), **values)

    def _revalidate(self) -> None:
        error = self.query_one("#decoding-error", Label)
        for field in self.query(Input):
            field.remove_class("-invalid")
        try:
            config = self.read()
        except DecodingError as e:
            for field in self.query(Input):
                field.set_class(field.id == e.field, "-invalid")
            error.update(str(e))
            error.set_class(True, "-shown")
            return
        error.set_class(False, "-shown")
        if config != self.config:
            self.config = config
            self.post_message(self.Changed(config))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._revalidate()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._revalidate()
