"""A member's voice: their words counted into an n-gram mixed into what is served, weighed on their held-out texts."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from core import LanguageModel, VoiceTooSmall, build_instant, load

# An original little harbour town: everyone talks of boats and weather; one writer, Wren, has habits of her own.
PLACES = ["the quay", "the harbour", "the old pier", "the lighthouse", "the fish market", "the chapel steps"]
THINGS = ["the boats", "the nets", "the gulls", "the ferry", "the tide", "the lamps", "the rain"]
DOINGS = ["came in early", "were late again", "looked grey today", "kept us waiting", "went out at dawn"]
OTHERS = [
    "{thing} {doing} near {place} .",
    "did you see {thing} by {place} ?",
    "i think {thing} {doing} .",
    "we walked to {place} and {thing} {doing} .",
]
WREN = [  # Wren's own turns of phrase, which nobody else uses
    "honestly , my dear , {thing} {doing} , and that is that .",
    "honestly , my dear , {place} smells of marmalade again .",
    "my dear , {thing} {doing} , mark my words .",
    "that is that , my dear : {place} at noon .",
]


def lines(shapes: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(shapes).format(place=rng.choice(PLACES), thing=rng.choice(THINGS), doing=rng.choice(DOINGS))
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> tuple[LanguageModel, list[str], list[str]]:
    """The server's instant model (everyone's messages, Wren's among them), Wren's messages, and later ones of hers."""
    wren = lines(WREN, 80, seed=2)
    everyone = lines(OTHERS, 900, seed=1)
    rng = random.Random(3)
    corpus = everyone + wren
    rng.shuffle(corpus)
    path = build_instant("\n".join(corpus) + "\n", tmp_path_factory.mktemp("server") / "harbour").path
    return load(path), wren, lines(WREN, 30, seed=4)


def test_a_members_voice_scores_their_held_out_messages_better_than_the_server_model_alone(server):
    model, wren, later = server
    bent = model.with_voice(wren)
    assert 0 < bent.weights["voice"] < 1
    assert sum(bent.weights.values()) == pytest.approx(1.0, abs=0.01)
    text = "\n".join(later) + "\n"
    alone, voiced = model.perplexity(text).perplexity, bent.perplexity(text).perplexity
    assert math.log(voiced) < 0.95 * math.log(alone), (voiced, alone)  # bits per token down by over 5%
    assert "voice" not in model.weights and model.voice is None  # the server's model is unchanged


def test_the_voice_bends_what_is_generated_toward_the_members_words(server):
    model, wren, _ = server
    bent = model.with_voice(wren)
    seed = "honestly ,"
    next_word = model.tokenizer.vocab.index("my")
    assert np.exp(bent.next_log_probs([model.encode_seed(seed)])[0, next_word]) > np.exp(
        model.next_log_probs([model.encode_seed(seed)])[0, next_word]
    )
    said = " ".join(bent.generate("the ferry", max_new_tokens=40, do_sample=True, seed=7, num_return_sequences=3))
    assert "my dear" in said or "that is that" in said, said


def test_too_few_messages_are_refused_with_one_reason(server):
    model, _, _ = server
    with pytest.raises(VoiceTooSmall, match="too few"):
        model.with_voice(["only one message ."])
    with pytest.raises(VoiceTooSmall):
        model.with_voice(["", "   "])
