"""The compose screen (home): type a seed, see the model's ghost text, next words and variants."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, TextArea
from textual.worker import get_current_worker

from core import ContinuoError, GenerationConfig, LanguageModel

from ..gate import Stale
from ..safety import WorkerSafetyNet
from ..text import appended
from ..widgets.candidates import CandidatesPanel
from ..widgets.decoding import DecodingControls
from ..widgets.model_card import ModelCardView
from ..widgets.seed_editor import SeedEditor
from ..widgets.variants import VariantCard, VariantsPanel

if TYPE_CHECKING:
    from textual import getters

    from ..app import ContinuoApp


def variants_config(base: GenerationConfig, count: int) -> GenerationConfig:
    """`count` different continuations: sampled, or the best beams when sampling is off."""
    if base.do_sample:
        return replace(base, num_return_sequences=count, num_beams=1)
    return replace(base, num_beams=max(count, base.num_beams), num_return_sequences=count)


class ComposeScreen(WorkerSafetyNet, Screen):
    """Seed editor with ghost text on the left; candidates, decoding options and model card on the right."""

    if TYPE_CHECKING:
        app = getters.app(ContinuoApp)

    DEFAULT_CSS = """
    ComposeScreen {
        & #main { height: 1fr; }
        & #left { width: 1fr; }
        & #side { width: 34; }
        &.-narrow VariantsPanel { layout: vertical; }
    }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # narrow: variants stacked, not side by side

    BINDINGS = [
        Binding("ctrl+g", "variants", "Variants", tooltip="Generate several continuations; again to regenerate"),
        Binding(
            "alt+1",
            "pick(1)",
            "Pick word",
            key_display="alt+1…9",
            show=False,
            tooltip="Append the next-word candidate of that number",
        ),
        *[Binding(f"alt+{n}", f"pick({n})", show=False) for n in range(2, 10)],
        Binding("ctrl+l", "clear", "Clear", show=False, tooltip="Empty the seed"),
    ]

    def compose(self) -> ComposeResult:
        app = self.app
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield SeedEditor(app.suggester, id="seed-editor")
                yield VariantsPanel(app.config.variants, id="variants")
            with Vertical(id="side"):
                yield CandidatesPanel(id="candidates")
                yield DecodingControls(app.generation, id="decoding")
                yield ModelCardView(id="card")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        editor = self.editor
        editor.border_title = "Seed"
        editor.border_subtitle = "Tab accepts · ^→ one word"
        self.query_one(CandidatesPanel).border_subtitle = "alt+1…9 picks"
        self.query_one(VariantsPanel).placeholder("^g: variants")
        self.watch(self.app, "model", self._model_changed)
        self.watch(self.app, "model_note", lambda _: self._model_changed(self.app.model))
        self.watch(self.app, "generation", lambda _: editor.refresh_ghost(), init=False)
        editor.focus()

    @property
    def editor(self) -> SeedEditor:
        return self.query_one(SeedEditor)

    @property
    def model(self) -> LanguageModel | None:
        return self.app.model

    def _model_changed(self, model: LanguageModel | None) -> None:
        card = self.query_one(ModelCardView)
        if model is None:
            card.show("", None, self.app.model_note)
        else:
            card.show(self.app.model_name, model.card)
        self.editor.refresh_ghost()
        self.refresh_candidates()

    # --- ghost text and candidates follow the text
    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.refresh_candidates()

    def refresh_candidates(self) -> None:
        self.run_worker(self._candidates(self.editor.text), group="candidates", exit_on_error=False)

    async def _candidates(self, text: str) -> None:
        panel, model = self.query_one(CandidatesPanel), self.model
        if model is None:
            panel.show([], empty=self.app.model_note)
            return
        stem = model.tokenizer.unfinished_word(text)
        title = f"Words starting “{stem}”" if stem else "Next word"
        try:
            found = await self.app.gate.run(
                "candidates", model.candidates, text, self.app.config.candidates, partial=True
            )
        except Stale:
            return
        except ContinuoError as e:
            if text == self.editor.text:
                panel.show([], title, empty=str(e))
            return
        if text == self.editor.text and model is self.model:
            panel.show(found, title, empty=f"no known word starts with “{stem}”")

    def on_candidates_panel_picked(self, event: CandidatesPanel.Picked) -> None:
        if self.model is not None:
            self.editor.append(appended(self.editor.text, event.candidate.token, self.model.tokenizer))
            self.editor.focus()

    def action_pick(self, number: int) -> None:
        self.query_one(CandidatesPanel).action_pick(number)

    def action_clear(self) -> None:
        self.editor.clear()
        self.editor.focus()

    # --- decoding options
    def on_decoding_controls_changed(self, event: DecodingControls.Changed) -> None:
        self.app.use_generation(event.config)

    # --- variants
    def action_variants(self) -> None:
        text = self.editor.text
        if self.model is None:
            self.app.report(self.app.model_note)
        elif not text.strip():
            self.app.report("the seed is empty: type a few words first")
        else:
            self.query_one(VariantsPanel).placeholder("thinking…")
            self.generate_variants(self.model, text, variants_config(self.app.generation, self.app.config.variants))

    @work(thread=True, exclusive=True, group="variants", exit_on_error=False)
    def generate_variants(self, model: LanguageModel, text: str, config: GenerationConfig) -> None:
        worker = get_current_worker()
        try:
            texts = model.generate(text, config)
        except ContinuoError as e:
            self.app.call_from_thread(self.app.report, e)
            texts = []
        if not worker.is_cancelled:
            self.app.call_from_thread(self.query_one(VariantsPanel).show, texts)

    def on_variant_card_chosen(self, event: VariantCard.Chosen) -> None:
        if event.copy:
            self.app.copy_to_clipboard(event.text)
            self.app.inform("copied the variant to the clipboard")
        else:
            self.editor.append(event.text)
            self.editor.focus()

    def extra_commands(self) -> Iterable[SystemCommand]:
        for card in self.query(VariantCard):
            if card.text:
                yield SystemCommand(f"Copy variant {card.number}", card.text.strip()[:60], card.action_copy)
                yield SystemCommand(f"Append variant {card.number}", card.text.strip()[:60], card.action_use)
