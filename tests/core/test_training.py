"""Training end to end on real tiny models: progress, early stopping, cancel, resume, refusals."""

from dataclasses import replace

import pytest
from testdata import TINY_MODEL, TINY_TRAIN, VERSE

from core import Cancelled, CorpusTooSmall, ModelConfig, TrainConfig, load, read_card, read_text, train

TEXT = read_text(VERSE)


def test_training_reports_progress_and_saves_a_bundle_that_generates(tmp_path):
    reports = []
    result = train(
        TEXT,
        tmp_path / "m",
        ModelConfig(**TINY_MODEL),
        TrainConfig(**{**TINY_TRAIN, "epochs": 2}),
        corpus_name="verse",
        on_progress=reports.append,
    )
    phases = [p.phase for p in reports]
    assert phases[0] == "start" and phases[-1] == "done" and phases.count("epoch") == 2
    epochs = [p for p in reports if p.phase == "epoch"]
    assert all(p.val_perplexity > 1 for p in epochs) and epochs[-1].fraction == pytest.approx(1.0)
    assert result.card.epochs == 2 and result.card.stopped == "completed all epochs"
    model = load(result.path)
    text = model.generate("The lamp at", max_new_tokens=5, do_sample=True, seed=1)[0]
    assert len(model.tokenizer.split(text)) == 5


def test_cancel_stops_at_once_and_keeps_the_previous_model(tiny_model_path, tmp_path):
    import shutil

    target = tmp_path / "m"
    shutil.copytree(tiny_model_path, target)
    before = (target / "model.keras").read_bytes()
    batches = []
    with pytest.raises(Cancelled):
        train(
            TEXT,
            target,
            ModelConfig(**TINY_MODEL),
            TrainConfig(**{**TINY_TRAIN, "epochs": 50}),
            on_progress=batches.append,
            should_stop=lambda: len(batches) >= 2,
        )
    assert (target / "model.keras").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_early_stopping_restores_the_best_epoch(tmp_path):
    cfg = TrainConfig(epochs=6, batch_size=256, patience=1, learning_rate=0.05, seed=3)  # too hot: overfits fast
    result = train(TEXT, tmp_path / "m", ModelConfig(**TINY_MODEL), cfg)
    history = result.card.history["val_perplexity"]
    assert result.card.neural_val_perplexity == pytest.approx(min(history), rel=1e-3)
    if len(history) < 6:
        assert result.card.stopped.startswith("early stopping")


def test_time_budget_stops_training_and_keeps_a_model(tmp_path):
    result = train(
        TEXT,
        tmp_path / "m",
        ModelConfig(**TINY_MODEL),
        TrainConfig(**{**TINY_TRAIN, "epochs": 500, "max_minutes": 0.05}),
    )
    assert result.card.stopped.startswith("time budget") and result.card.epochs < 500
    assert read_card(result.path).val_perplexity is not None


def stopped_then_run_again(tmp_path, epochs: int, stop_when):
    """A checkpointed run stopped once `stop_when(its reports so far)`, then the same run again: (the first run's
    reports, the second's, the second's result)."""
    ckpt, cfg = tmp_path / "ckpt", TrainConfig(**{**TINY_TRAIN, "epochs": epochs})
    seen, resumed = [], []
    with pytest.raises(Cancelled):
        train(
            TEXT,
            tmp_path / "m",
            ModelConfig(**TINY_MODEL),
            cfg,
            on_progress=seen.append,
            should_stop=lambda: stop_when(seen),
            checkpoint_dir=ckpt,
        )
    assert not (tmp_path / "m").exists() and ckpt.exists()
    result = train(
        TEXT, tmp_path / "m", ModelConfig(**TINY_MODEL), cfg, on_progress=resumed.append, checkpoint_dir=ckpt
    )
    assert result.path.exists() and not ckpt.exists()
    return seen, resumed, result


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    _, resumed, _ = stopped_then_run_again(
        tmp_path, 3, lambda seen: any(p.phase == "batch" and p.epoch == 2 for p in seen)
    )
    assert [p.epoch for p in resumed if p.phase == "epoch"] == [2, 3]  # epoch 1 came from the checkpoint


def test_a_run_stopped_after_its_last_epoch_keeps_its_checkpoint_and_resumes_with_nothing_to_train(tmp_path):
    # stopped while it mixes and saves: before, that lost both epochs
    seen, resumed, result = stopped_then_run_again(
        tmp_path, 2, lambda seen: any(p.phase == "epoch" and p.epoch == 2 for p in seen)
    )
    assert not [p for p in resumed if p.phase in ("batch", "epoch")]  # both epochs came from the checkpoint
    assert any("all its epochs came from the checkpoint" in p.message for p in resumed if p.phase == "start")
    assert result.card.epochs == 2 and result.card.history["val_perplexity"] == pytest.approx(
        [p.val_perplexity for p in seen if p.phase == "epoch"], abs=1e-3
    )


def test_too_small_corpus_is_refused_with_how_much_is_needed(tmp_path):
    with pytest.raises(CorpusTooSmall, match=r"has 10 tokens; at least 2,000 are needed"):
        train("The sea is grey and the sky is low.", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_bad_training_settings_are_refused(tmp_path):
    from core import ContinuoError

    with pytest.raises(ContinuoError, match="epochs must be at least 1"):
        train(TEXT, tmp_path / "m", train_config=TrainConfig(epochs=0))
    with pytest.raises(ValueError, match="dropout"):
        train(TEXT, tmp_path / "m", ModelConfig(dropout=1.5))


def test_a_batch_split_across_replicas_makes_the_same_update_as_one_part():
    import numpy as np

    from core.backend import load_keras
    from core.model import build_model
    from core.training import _Steps

    keras = load_keras()
    config = ModelConfig(vocab_size=40, window=5, embedding_dim=8, units=8, dropout=0.0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, 40, (10, 5)).astype(np.int32), rng.integers(1, 40, 10).astype(np.int32)
    weights = build_model(config).get_weights()
    updated, losses = [], []
    for replicas in (1, 3):  # 10 windows into 3 parts: the last part is padded, and the padding must not count
        model = build_model(config)
        model.set_weights(weights)
        steps = _Steps(model, keras.optimizers.SGD(0.5), config.window, replicas)
        steps.train(x, y)
        updated.append(model.get_weights())
        losses.append((steps.mean_loss(), steps.evaluate([(x, y)])))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for one, split in zip(*updated, strict=True):
        np.testing.assert_allclose(one, split, rtol=1e-4, atol=1e-6)
    assert not np.allclose(updated[0][0], weights[0])  # the step did change the embeddings


@pytest.mark.parametrize(
    ("architecture", "embedding_dim", "tie_embeddings"),
    [("bilstm", 8, True), ("bilstm", 6, True), ("bilstm", 8, False), ("lstm-lm", 8, True)],
)
@pytest.mark.parametrize(("matmuls", "tolerance"), [("float32", 1e-5), ("bfloat16", 0.05)])
def test_the_training_twin_computes_what_the_saved_model_does(
    architecture, embedding_dim, tie_embeddings, matmuls, tolerance
):
    import numpy as np

    from core.model import build_model

    config = ModelConfig(40, 6, embedding_dim, 8, architecture=architecture, tie_embeddings=tie_embeddings)
    served = build_model(config)
    assert len(_lstm_layers(served)) == (3 if architecture == "bilstm" else 2)  # keras LSTMs: cuDNN stays possible
    rng = np.random.default_rng(0)
    served.set_weights([rng.normal(0, 0.5, w.shape) for w in served.get_weights()])
    twin = build_model(config, training_matmuls=matmuls)
    assert not _lstm_layers(twin)
    twin.set_weights(served.get_weights())  # the same weights, in the same order
    x = rng.integers(1, config.vocab_size, (4, config.window)).astype(np.int32)
    expected = np.asarray(served(x))
    assert np.abs(expected).max() > 1  # logits far from 0, so a wrong order or gate would show
    np.testing.assert_allclose(twin(x), expected, rtol=tolerance, atol=tolerance)


def test_weight_drop_changes_training_steps_only():
    import numpy as np

    from core.model import build_model

    x = np.random.default_rng(0).integers(1, 40, (4, 6)).astype(np.int32)
    for weight_drop, differs in ((0.5, True), (0.0, False)):
        config = ModelConfig(40, 6, 8, 8, dropout=0.0, weight_drop=weight_drop)
        twin = build_model(config, training_matmuls="float32")
        trained, served = np.asarray(twin(x, training=True)), np.asarray(twin(x, training=False))
        assert (np.abs(trained - served).max() > 1e-4) == differs


def test_the_schedule_and_weight_drop_left_open_are_chosen_for_the_corpus_size():
    small, large = TrainConfig().sized_for(10_000), TrainConfig().sized_for(1_000_000)
    assert small.learning_rate > large.learning_rate and small.patience > large.patience
    chosen_by_hand = dict(learning_rate=1e-3, patience=7)
    assert TrainConfig(**chosen_by_hand).sized_for(10_000) == replace(small, **chosen_by_hand)
    small_model, large_model = ModelConfig().sized_for(10_000), ModelConfig().sized_for(1_000_000)
    assert small_model.weight_drop > 0 and large_model.weight_drop == 0
    assert small_model.dropout > large_model.dropout
    assert ModelConfig(window=40).sized_for(10_000).weight_drop == 0  # only the unrolled LSTM drops weights


def test_tied_embeddings_score_words_with_the_embedding_matrix_and_survive_saving(tiny_model_path):
    import numpy as np

    from core.model import build_model

    saved = load(tiny_model_path)  # trained with the defaults, which tie
    assert saved.config.tie_embeddings
    embedding = saved.model.get_layer("embedding")
    assert not [layer for layer in saved.model.layers if layer.name == "logits"]  # no separate output matrix
    fresh = build_model(saved.config)
    fresh.set_weights(saved.model.get_weights())
    x = np.random.default_rng(0).integers(1, saved.config.vocab_size, (3, saved.config.window)).astype(np.int32)
    np.testing.assert_allclose(fresh(x), saved.model(x), rtol=1e-5, atol=1e-5)  # the loaded model is the tied one
    before = np.asarray(saved.model(x))
    embedding.embeddings.assign(embedding.embeddings * 2)  # the one matrix moves the output too
    assert not np.allclose(saved.model(x), before)


def test_a_bundle_from_before_tied_embeddings_loads_untied_and_generates():
    from core.store import DEFAULT_MODEL_PATH

    model = load(DEFAULT_MODEL_PATH)  # saved before tying; its config has no tie_embeddings
    assert "tie_embeddings" not in read_card(DEFAULT_MODEL_PATH).hyperparameters.get("model", {})
    assert model.config.tie_embeddings is False
    assert model.generate("The sea", max_new_tokens=3)[0].strip()


def _lstm_layers(model) -> list:
    found = []
    for layer in model.layers:
        if hasattr(layer, "forward_layer"):  # Bidirectional
            found += [layer.forward_layer, layer.backward_layer]
        elif type(layer).__name__ == "LSTM":
            found.append(layer)
    return found


def test_checkpoint_round_trip_and_an_unreadable_one_is_ignored(tmp_path):
    import numpy as np

    from core.backend import load_keras
    from core.checkpoint import EpochCheckpoint, TrainingState
    from core.model import build_model

    keras = load_keras()
    config = ModelConfig(vocab_size=30, window=4, embedding_dim=4, units=4)
    model, optimizer = build_model(config), keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(7)
    state = TrainingState(
        epochs_done=2, examples=900, best_loss=3.5, history={"loss": [4.0, 3.6]}, best_weights=model.get_weights()
    )
    EpochCheckpoint(tmp_path, "run-1").save(state, model, optimizer)

    fresh, fresh_optimizer = build_model(config), keras.optimizers.Adam()
    fresh_optimizer.build(fresh.trainable_variables)
    restored = EpochCheckpoint(tmp_path, "run-1").restore(fresh, fresh_optimizer)
    assert (restored.epochs_done, restored.examples, restored.history) == (2, 900, {"loss": [4.0, 3.6]})
    assert int(fresh_optimizer.iterations.numpy()) == 7
    for saved, loaded in zip(model.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, loaded)

    (tmp_path / "state.npz").write_bytes(b"cut short by a power failure")
    assert EpochCheckpoint(tmp_path, "run-1").restore(fresh, fresh_optimizer).epochs_done == 0
    assert EpochCheckpoint(tmp_path, "run-2").restore(fresh, fresh_optimizer).epochs_done == 0  # other run: wiped


def test_the_lstm_lm_option_learns_from_every_position_and_generates(tmp_path):
    config = ModelConfig(**{**TINY_MODEL, "architecture": "lstm-lm", "window": 12})
    result = train(TEXT, tmp_path / "m", config, TrainConfig(**{**TINY_TRAIN, "epochs": 2}))
    card = result.card
    assert card.hyperparameters["model"]["architecture"] == "lstm-lm"
    assert card.examples == pytest.approx(2 * card.tokens, rel=0.02)  # every token is a target once an epoch
    model = load(result.path)
    assert model.config.every_position and model.model.output_shape[1:] == (12, card.vocab_size)
    text = model.generate("The lamp at", max_new_tokens=4, do_sample=True, seed=1)[0]
    assert len(model.tokenizer.split(text)) == 4
    assert model.perplexity(TEXT[-3000:]).perplexity > 1


def test_settings_out_of_range_are_one_line_config_errors(tmp_path):
    from core import ConfigError

    for bad in (dict(window=0), dict(units=-1), dict(dropout=1.5), dict(architecture="transformer")):
        with pytest.raises(ConfigError):
            train(TEXT, tmp_path / "m", ModelConfig(**{**TINY_MODEL, **bad}), TrainConfig(**TINY_TRAIN))
    with pytest.raises(ConfigError, match="tokenizer"):
        TrainConfig(tokenizer="klingon").validate()
    with pytest.raises(ConfigError, match="matmuls"):
        TrainConfig(matmuls="float8").validate()


@pytest.mark.parametrize("has_bfloat16", [False, True])
def test_bfloat16_is_chosen_only_on_a_cpu_that_has_it_and_after_timing_it(monkeypatch, has_bfloat16):
    from core import backend

    features = {**backend.cpu_features(), "bfloat16": has_bfloat16}
    monkeypatch.setattr(backend, "cpu_features", lambda: features)
    real_clock, readings = backend.time.perf_counter, []

    def clock() -> float:
        readings.append(1)
        return real_clock()

    monkeypatch.setattr(backend.time, "perf_counter", clock)
    backend.bfloat16_is_faster.cache_clear()
    try:
        faster = backend.bfloat16_is_faster(8, 8)
    finally:
        backend.bfloat16_is_faster.cache_clear()
    if has_bfloat16:
        assert isinstance(faster, bool) and readings  # timed, then chosen by the timing
    else:
        assert faster is False and not readings  # no flag: float32, without timing anything
