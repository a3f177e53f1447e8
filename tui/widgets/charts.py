"""A labelled sparkline: a metric's history during training and its latest value."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

MAX_POINTS = 200  # the oldest points are dropped: a sparkline is only so wide


class MetricChart(Horizontal):
    """`name  ▁▂▃▅▇  latest` for one training metric."""

    DEFAULT_CSS = """
    MetricChart {
        height: 3;
        & Label.name { width: 16; color: $text-muted; padding: 1 0; }
        & Sparkline { width: 1fr; height: 3; }
        & Label.value { width: 12; padding: 1 1; text-align: right; }
    }
    """

    def __init__(self, name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.metric = name
        self.values: list[float] = []

    def compose(self) -> ComposeResult:
        yield Label(self.metric, classes="name")
        yield Sparkline([])
        yield Label("–", classes="value")

    def add(self, value: float) -> None:
        self.values = (self.values + [value])[-MAX_POINTS:]
        self.query_one(Sparkline).data = self.values
        self.query_one(".value", Label).update(f"{value:.3f}" if value < 100 else f"{value:,.1f}")

    def clear(self) -> None:
        self.values = []
        self.query_one(Sparkline).data = []
        self.query_one(".value", Label).update("–")
