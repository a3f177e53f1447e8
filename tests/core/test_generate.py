"""Decoding rules on a real tiny model: options, determinism, bans, beams, streaming, candidates."""

import numpy as np
import pytest

from core import DecodingError, GenerationConfig, SeedError
from core.tokenizer import PAD, UNK

SEED = "The harbour at Wenlow"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences"),
        ({"num_return_sequences": 2}, "greedy"),
        ({"do_sample": True, "num_beams": 2}, "do_sample"),
        ({"stop_at": "word"}, "stop_at"),
        ({"temprature": 0.5}, "unknown generation option"),
    ],
)
def test_bad_decoding_options_are_refused_with_a_reason(tiny_model, options, message):
    with pytest.raises(DecodingError, match=message):
        tiny_model.generate(SEED, **options)


def test_greedy_is_deterministic_and_equals_top_k_one(tiny_model):
    greedy = tiny_model.generate(SEED, max_new_tokens=8)
    assert greedy == tiny_model.generate(SEED, max_new_tokens=8)
    assert greedy == tiny_model.generate(SEED, max_new_tokens=8, do_sample=True, top_k=1, seed=3)


def test_sampling_is_repeatable_with_a_seed_and_varies_without(tiny_model):
    opts = dict(max_new_tokens=12, do_sample=True, num_return_sequences=4, temperature=1.5)
    assert tiny_model.generate(SEED, seed=11, **opts) == tiny_model.generate(SEED, seed=11, **opts)
    assert len(set(tiny_model.generate(SEED, seed=12, **opts))) > 1


def test_the_readable_preset_samples_unless_beams_are_asked_for():
    assert GenerationConfig.readable().do_sample and GenerationConfig.readable().temperature < 1
    assert not GenerationConfig.readable(num_beams=3).do_sample
    assert not GenerationConfig.readable(do_sample=False).do_sample
    with pytest.raises(DecodingError, match="do_sample"):
        GenerationConfig.readable(do_sample=True, num_beams=3)


def test_padding_and_unknown_are_never_generated(tiny_model):
    rows = [[2, 3, 4]] * 8
    steps = list(
        tiny_model._steps(rows, GenerationConfig(max_new_tokens=30, do_sample=True, temperature=5.0, top_k=0, seed=1))
    )
    generated = {tok for step in steps for _, tok in step}
    assert not generated & {tiny_model.tokenizer.index[PAD], tiny_model.tokenizer.index[UNK]}


def test_no_repeat_ngram_size_blocks_repeats(tiny_model):
    rows = [tiny_model.encode_seed(SEED)]
    list(tiny_model._steps(rows, GenerationConfig(max_new_tokens=40, no_repeat_ngram_size=2)))
    pairs = list(zip(rows[0], rows[0][1:], strict=False))
    assert len(pairs) == len(set(pairs))


def test_repetition_penalty_lowers_seen_tokens(tiny_model):
    cfg = GenerationConfig(repetition_penalty=10.0)
    scores = np.array([[-1.0, 2.0, 3.0, -4.0]])
    tiny_model._process(scores, [[2, 3]], cfg)
    assert scores[0, 2] == pytest.approx(0.3) and scores[0, 3] == pytest.approx(-40.0)


def test_stop_at_sentence_ends_after_the_first_sentence(tiny_model):
    texts = tiny_model.generate(
        SEED, max_new_tokens=60, do_sample=True, seed=5, num_return_sequences=5, stop_at="sentence"
    )
    for text in texts:
        tokens = tiny_model.tokenizer.split(text)
        ends = [i for i, t in enumerate(tokens) if t in {".", "!", "?"}]
        assert not ends or ends[0] == len(tokens) - 1


def test_beam_search_returns_distinct_high_scoring_sequences(tiny_model):
    beams = tiny_model.generate(SEED, num_beams=4, num_return_sequences=3, max_new_tokens=6)
    assert len(beams) == 3 and len(set(beams)) == 3


def test_batched_generation_matches_one_at_a_time(tiny_model):
    prompts = [SEED, "The sea", "I kept the kettle"]
    batched = tiny_model.generate_batch(prompts, max_new_tokens=6)
    assert batched == [tiny_model.generate(p, max_new_tokens=6) for p in prompts]


def test_stream_yields_the_same_text_as_generate(tiny_model):
    pieces = list(tiny_model.stream(SEED, max_new_tokens=10))
    assert len(pieces) >= 1
    assert "".join(pieces) == tiny_model.generate(SEED, max_new_tokens=10)[0]


def test_unknown_seed_words_are_echoed_and_only_unknown_words_are_refused(tiny_model):
    seed = "The zorblax harbour"
    text = tiny_model.generate(seed, max_new_tokens=5)[0]
    assert (seed + text).startswith("The zorblax harbour")
    with pytest.raises(SeedError, match="none of the seed's words"):
        tiny_model.generate("zorblax quuxify")
    with pytest.raises(SeedError, match="empty"):
        tiny_model.generate("   ")


def test_continuation_spacing_reads_naturally(tiny_model):
    assert not tiny_model.generate("The sea ", max_new_tokens=3)[0].startswith(" ")


def test_candidates_are_ranked_probabilities(tiny_model):
    cands = tiny_model.candidates("The tide comes", k=5)
    probs = [c.probability for c in cands]
    assert len(cands) == 5 and probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1.0 + 1e-6
    assert all(c.token not in (PAD, UNK) for c in cands)


def test_partial_word_candidates_complete_the_word(tiny_model):
    cands = tiny_model.candidates("The li", k=5, partial=True)
    assert cands and all(c.token.startswith("li") for c in cands)
    completion = tiny_model.complete("The li", max_new_tokens=3)
    assert any(("li" + completion).startswith(c.token) for c in cands)


def test_perplexity_is_finite_and_counts_tokens(tiny_model):
    result = tiny_model.perplexity("The tide comes in at evening.\nThe lamp at Carrick turns.")
    assert result.tokens == 14 and 1 < result.perplexity < len(tiny_model.tokenizer)


def test_a_bad_seed_in_a_batch_fails_only_itself(tiny_model):
    results = tiny_model.generate_batch([SEED, "zorblax quuxify", "The sea"], max_new_tokens=4)
    assert isinstance(results[1], SeedError) and "none of the seed's words" in str(results[1])
    assert results[0] == tiny_model.generate(SEED, max_new_tokens=4)
    assert results[2] == tiny_model.generate("The sea", max_new_tokens=4)
    assert all(isinstance(r, SeedError) for r in tiny_model.generate_batch(["", "zorblax"], max_new_tokens=4))


@pytest.mark.parametrize(
    "options, field",
    [
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"num_return_sequences": 2}, "num_return_sequences"),
        ({"temprature": 0.5}, "temprature"),
        ({"do_sample": True, "num_beams": 2}, None),
    ],
)
def test_a_decoding_error_names_its_field(options, field):
    with pytest.raises(DecodingError) as error:
        GenerationConfig.make(**options)
    assert error.value.field == field


def test_the_cache_reads_only_the_seed_so_sampled_words_do_not_feed_themselves(tiny_model):
    """With the cache reading the model's own words, each sampled word would make itself likelier (a
    Polya urn) and a few words would take over the continuation; reading the seed, none does."""
    from core import LanguageModel
    from core.ngram import NGramModel

    size = len(tiny_model.tokenizer)
    flat = NGramModel.fit(np.random.default_rng(0).integers(2, size, 200_000), size, order=2)  # ~uniform
    m = tiny_model
    model = LanguageModel(m.model, m.tokenizer, m.config, m.card, m.path, flat, neural_weight=0.0, cache_weight=0.5)
    seed = model.encode_seed(SEED)
    rows = [list(seed)]
    list(model._steps(rows, GenerationConfig(max_new_tokens=300, do_sample=True, top_k=0, seed=5)))
    new = [t for t in rows[0][len(seed) :] if t not in seed]
    assert max(np.bincount(new)) <= 8, np.bincount(new).max()  # each ~0.5 / vocab per step: a handful at most


def test_without_xla_the_forward_pass_computes_the_same(tiny_model, tiny_model_path):
    from core import load

    graph = load(tiny_model_path, xla=False)
    windows = np.random.default_rng(0).integers(2, len(graph.tokenizer), (3, graph.window)).astype(np.int32)
    np.testing.assert_allclose(graph.logits(windows), tiny_model.logits(windows), rtol=1e-4, atol=1e-5)
    assert graph.generate(SEED, max_new_tokens=6) == tiny_model.generate(SEED, max_new_tokens=6)
