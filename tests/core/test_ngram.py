"""The Kneser-Ney n-gram model: proper distributions, a hand-computed example, the instant bundle and the mixture."""

import json
import shutil

import numpy as np
import pytest
from testdata import TINY_MODEL, TINY_TRAIN, VERSE

from core import DEFAULT_MODEL, ModelConfig, ModelStore, NGramModel, TrainConfig, build_instant, load, read_text, train
from core.ngram import CACHE_TRUST, cache_distribution, cache_target_probabilities
from core.training import mixture_weights

TEXT = read_text(VERSE)


def only_order(order: int) -> tuple[float, ...]:
    """The cache's shares with all of it on one order."""
    return (0.0,) * (order - 1) + (1.0,)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_over_the_vocabulary_for_random_histories(order):
    rng = np.random.default_rng(order)
    ids = rng.integers(2, 40, size=3000)
    ids[::5] = 7  # some structure, so that higher orders have repeated contexts
    model = NGramModel.fit(ids, 40, order)
    for _ in range(50):
        history = rng.integers(0, 40, size=rng.integers(0, 8))
        p = model.distribution(history)
        assert p.shape == (40,) and p.min() > 0 and p.sum() == pytest.approx(1.0, abs=1e-9)
    test = rng.integers(2, 40, size=200)
    padded = np.concatenate([np.zeros(order - 1, np.int64), test])
    expected = [model.distribution(padded[i : i + order - 1])[w] for i, w in enumerate(test)]
    assert model.target_probabilities(test) == pytest.approx(expected, rel=1e-9)


def test_a_hand_computed_bigram_model():
    # text 2 3 2 3 2 4 over 5 ids, padded with one 0: bigrams (0,2) (2,3) (3,2) (2,3) (3,2) (2,4).
    # Too few counts for estimated discounts, so D1, D2, D3+ = 0.5, 1, 1.5.
    # Unigram continuation counts: 2 follows {0, 3}, 3 and 4 follow {2}: [0, 0, 2, 1, 1], total 4,
    # discounted mass (1 + 0.5 + 0.5) / 4 spread evenly over the 5 ids: 0.1 each.
    # p1 = [0.1, 0.1, (2-1)/4 + 0.1, (1-0.5)/4 + 0.1, (1-0.5)/4 + 0.1]
    p1 = np.array([0.1, 0.1, 0.35, 0.225, 0.225])
    # After 2: counts 3 -> 2, 4 -> 1, total 3, backoff weight (1 + 0.5) / 3 = 0.5.
    after_2 = 0.5 * p1 + np.array([0, 0, 0, (2 - 1) / 3, (1 - 0.5) / 3])
    model = NGramModel.fit(np.array([2, 3, 2, 3, 2, 4]), 5, order=2)
    # A history of padding is context 0, seen once (before 2): count 1, backoff weight 0.5 / 1.
    assert model.distribution([]) == pytest.approx(0.5 * p1 + np.array([0, 0, (1 - 0.5) / 1, 0, 0]))
    assert model.distribution([2]) == pytest.approx(after_2)
    assert model.distribution([4]) == pytest.approx(p1)  # 4 never came before anything


def test_the_order_is_chosen_on_validation_and_survives_a_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.tile(rng.integers(2, 30, size=50), 40)  # a text that repeats: long contexts pay
    model, scores = NGramModel.fit_best(ids[:1800], ids[1800:], 30)
    assert set(scores) == {3, 4, 5} and model.order == min(scores, key=scores.get)
    model.save(tmp_path / "ngram.npz")
    copy = NGramModel.load(tmp_path / "ngram.npz")
    assert copy.target_probabilities(ids[1800:]) == pytest.approx(model.target_probabilities(ids[1800:]))


def test_an_instant_bundle_is_built_in_seconds_and_generates(tmp_path):
    result = build_instant(TEXT, tmp_path / "instant", corpus_name="verse")
    model = load(result.path)
    assert model.model is None and model.ngram is not None and not (result.path / "model.keras").exists()
    card = result.card
    assert (
        card.ngram_order in (3, 4, 5) and card.neural_weight == 0 and card.val_perplexity == card.ngram_val_perplexity
    )
    assert card.train_seconds < 30
    text = model.generate("The lamp at", max_new_tokens=6, do_sample=True, seed=1)[0]
    assert len(model.tokenizer.split(text)) == 6
    assert [c.token for c in model.candidates("The lamp", 3)]
    assert model.perplexity(TEXT[-2000:]).perplexity > 1


def test_a_bundle_from_before_the_ngram_cache_keeps_its_unigram_cache(tiny_model_path, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(tiny_model_path, path)
    shares = load(path).cache_shares
    assert len(shares) == 3 and sum(shares) == pytest.approx(1.0, abs=0.01)  # each order's share, chosen on valid
    config = json.loads((path / "config.json").read_text())
    del config["cache_shares"]  # as bundles saved before it was written
    (path / "config.json").write_text(json.dumps(config))
    assert load(path).cache_shares == (1.0,)


def test_the_mixture_weights_are_chosen_on_the_validation_text_only(tmp_path):
    lines = TEXT.splitlines(keepends=True)
    train_text, valid_text = "".join(lines[: len(lines) * 8 // 10]), "".join(lines[len(lines) * 8 // 10 :])
    result = train(
        train_text,
        tmp_path / "m",
        ModelConfig(**TINY_MODEL),
        TrainConfig(**{**TINY_TRAIN, "epochs": 2}),
        valid_text=valid_text,
    )
    model = load(result.path)
    ids = np.array(model.tokenizer.encode(valid_text), np.int32)
    parts = model.target_log_probs_by_part(ids)
    (neural, ngram, cache), perplexity = mixture_weights(*(np.exp(parts[k]) for k in ("neural", "ngram", "cache")))
    card = result.card
    assert (card.neural_weight, card.cache_weight) == pytest.approx((neural, cache), abs=2e-3)
    assert card.val_perplexity == pytest.approx(perplexity, rel=1e-3)
    assert card.val_perplexity <= min(card.neural_val_perplexity, card.ngram_val_perplexity) + 1e-6
    assert model.perplexity(valid_text).perplexity == pytest.approx(perplexity, rel=1e-3)  # what is served


def test_mixture_weights_go_to_the_part_that_explains_the_targets():
    good, bad = np.full(100, 0.5), np.full(100, 0.01)
    assert mixture_weights(good, bad)[0] == pytest.approx((1.0, 0.0), abs=1e-3)
    assert mixture_weights(bad, good)[0] == pytest.approx((0.0, 1.0), abs=1e-3)
    halves = np.r_[np.full(50, 0.5), np.full(50, 0.01)]
    (a, b), _ = mixture_weights(halves, halves[::-1])
    assert a == pytest.approx(b, abs=1e-3)


def counts(p, counted: int, vocab_size: int = 10):
    """The cache's own estimate inside what it serves: its counts are blended with the uniform distribution."""
    share = counted / (counted + CACHE_TRUST)
    return (np.asarray(p) - (1 - share) / vocab_size) / share


def test_the_unigram_cache_counts_the_tokens_just_before():
    ids = np.array([5, 6, 5, 7, 5, 6])
    expected = [0.0, 1 / 2, 0.0, 2 / 4, 1 / 5]  # after the first token
    at_once = cache_target_probabilities(ids, 10, size=500)
    assert at_once[0] == pytest.approx(1 / 10)  # nothing counted yet: uniform
    assert [counts(at_once[i], i) for i in range(1, 6)] == pytest.approx(expected)
    assert counts(cache_target_probabilities(ids, 10, size=2)[4], 2) == pytest.approx(1 / 2)  # 5, 7: one 5
    p = cache_distribution([5, 6, 5], 10)
    assert p.sum() == pytest.approx(1.0) and counts(p[5], 3) == pytest.approx(2 / 3)


def test_the_cache_predicts_what_followed_the_longest_context_that_came_before():
    three = only_order(3)
    p = cache_distribution([3, 4, 5, 9, 4, 6, 3, 4], 10, three)  # "3 4" came before, followed by 5
    assert counts(p[5], 8) == pytest.approx(1.0)
    p = cache_distribution([3, 4, 5, 9, 4, 6, 8, 4], 10, three)  # "8 4" never did; "4" did: then 5 and 6
    assert counts(p[[5, 6]], 8) == pytest.approx([0.5, 0.5])
    p = cache_distribution([3, 4, 5, 7], 10, three)  # nor "7": how often each token came
    assert counts(p[[3, 4, 5, 7]], 4) == pytest.approx([0.25] * 4)
    history = [3, 4, 5, 3, 4, 6, 3, 4]
    assert counts(cache_distribution(history, 10, three)[[5, 6]], 8) == pytest.approx([0.5, 0.5])
    written = cache_distribution(history, 10, three, counted=3)  # only "3 4 5" was written; the context: "3 4"
    assert counts(written[5], 3) == pytest.approx(1.0)


def test_a_few_words_of_seed_weigh_little_in_the_cache():
    short, long = cache_distribution([3, 4, 5], 10), cache_distribution([3, 4, 5] * 100, 10)
    assert short[3] < 0.15 < 0.3 < long[3]  # the same shares counted, trusted by how much was counted


@pytest.mark.parametrize("shares", [(1.0,), (0.0, 1.0), (0.0, 0.0, 1.0), (0.2, 0.3, 0.5)])
def test_the_cache_scores_every_position_as_its_distribution_does(shares):
    rng = np.random.default_rng(len(shares))
    for size in (1, 7, 500):
        ids = rng.integers(1, 6, 120)
        at_once = cache_target_probabilities(ids, 6, shares, size=size)
        for i in range(len(ids)):
            p = cache_distribution(ids[:i], 6, shares, size=size)
            assert p[ids[i]] == pytest.approx(at_once[i], abs=1e-12)
            assert p.sum() == pytest.approx(1.0)


def test_a_format_1_bundle_still_loads_and_generates():
    path = ModelStore().path(DEFAULT_MODEL)
    assert json.loads((path / "config.json").read_text())["format_version"] == 1
    model = load(path)
    assert model.ngram is None and model.weights["neural"] == 1.0 and model.weights["ngram"] == 0.0
    assert model.generate("The sea", max_new_tokens=3)[0]
