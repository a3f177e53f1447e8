"""Bundles: a round trip gives the same model; bad bundles give one-line errors; saving is atomic."""

import json
import shutil

import numpy as np
import pytest

from core import BundleError, load, read_card
from core.bundle import CONFIG_FILE, MODEL_FILE, save_bundle


def test_round_trip_gives_identical_predictions(tiny_model, tmp_path):
    copy = save_bundle(tmp_path / "copy", tiny_model.model, tiny_model.tokenizer, tiny_model.config, tiny_model.card)
    again = load(copy)
    windows = np.random.default_rng(0).integers(0, len(tiny_model.tokenizer), (4, tiny_model.window), np.int32)
    np.testing.assert_allclose(again.logits(windows), tiny_model.logits(windows), rtol=1e-5, atol=1e-5)
    assert again.tokenizer.vocab == tiny_model.tokenizer.vocab
    assert read_card(copy).val_perplexity == tiny_model.card.val_perplexity


def test_card_records_the_training_run(tiny_model):
    card = tiny_model.card
    assert card.corpus == "verse" and card.tokens > 10_000 and card.vocab_size == len(tiny_model.tokenizer)
    assert card.val_perplexity > 1 and card.epochs == 1 and card.history["val_perplexity"]
    assert card.hyperparameters["model"]["window"] == 8


def test_saving_over_a_bundle_replaces_it_whole(tiny_model, tmp_path):
    target = tmp_path / "m"
    args = (tiny_model.model, tiny_model.tokenizer, tiny_model.config)
    save_bundle(target, *args, tiny_model.card)
    card = tiny_model.card
    card2 = type(card)(**{**card.__dict__, "corpus": "second"})
    save_bundle(target, *args, card2)
    assert read_card(target).corpus == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary or old copies left behind


def test_failed_save_leaves_the_old_bundle(tiny_model, tmp_path):
    target = tmp_path / "m"
    save_bundle(target, tiny_model.model, tiny_model.tokenizer, tiny_model.config, tiny_model.card)
    with pytest.raises(AttributeError):
        save_bundle(target, object(), tiny_model.tokenizer, tiny_model.config, tiny_model.card)
    assert read_card(target).corpus == "verse"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_bad_bundles_give_one_line_errors(tiny_model_path, tmp_path):
    with pytest.raises(BundleError, match="no model bundle there"):
        load(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_path, broken)
    (broken / MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="corrupt model bundle"):
        load(broken)
    (broken / MODEL_FILE).unlink()
    with pytest.raises(BundleError, match="missing model.keras"):
        load(broken)
    future = tmp_path / "future"
    shutil.copytree(tiny_model_path, future)
    config = json.loads((future / CONFIG_FILE).read_text())
    (future / CONFIG_FILE).write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(BundleError, match="bundle format 99"):
        load(future)
