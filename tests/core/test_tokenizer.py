"""Tokenizer: what is kept, how text comes back, and the vocabulary's special tokens."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tokenizer import NEWLINE, PAD, UNK, Tokenizer, detokenize_words, normalize, tokenize_words

PTB_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb" / "ptb.test.txt"


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("Don't stop, y'all.", ["Don't", "stop", ",", "y'all", "."]),
        ("salt-white sea", ["salt-white", "sea"]),
        ("line one\nline two", ["line", "one", NEWLINE, "line", "two"]),
        ("see https://example.com/a?b=1.", ["see", "https://example.com/a?b=1", "."]),
        ("pi is 3.14, or 1,000 at 12:30pm", ["pi", "is", "3.14", ",", "or", "1,000", "at", "12:30pm"]),
        ("great 👍🏽 :)", ["great", "👍🏽", ":)"]),
        ("family 👨‍👩‍👧 here", ["family", "👨\u200d👩\u200d👧", "here"]),
        ("wait... what?!", ["wait", "...", "what", "?", "!"]),
        ("The Sea", ["The", "Sea"]),  # case is kept
    ],
)
def test_tokens_keep_what_a_reader_needs(text, tokens):
    assert tokenize_words(text) == tokens


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        'She said, "Come home." Then (quietly) left...',
        "I'll be there at 3pm; it's 2.5 cups — not 3.\nNext line!",
        "Tea? Yes! 🎉 https://example.org/x ok",
    ],
)
def test_detokenize_restores_natural_text(text):
    assert detokenize_words(tokenize_words(text)) == text


_word = st.from_regex(r"[A-Za-z][a-z]{0,7}(?:['-][a-z]{1,4})?", fullmatch=True)
_piece = st.one_of(
    _word,
    _word.map(lambda w: w + ","),
    _word.map(lambda w: w + "."),
    _word.map(lambda w: w + "!"),
    _word.map(lambda w: f"({w})"),
    _word.map(lambda w: f'"{w}"'),
    st.sampled_from(["3.14", "12:30", "🙂", "—", ":)"]),
)
_line = st.lists(_piece, min_size=1, max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, min_size=1, max_size=4).map("\n".join))
def test_round_trip_of_natural_text(text):
    assert detokenize_words(tokenize_words(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_tokens_survive_a_round_trip_for_any_text(text):
    tokens = tokenize_words(text)
    assert tokenize_words(detokenize_words(tokens)) == tokens


def test_normalize_unifies_line_endings_and_spaces():
    assert normalize("a \t b\r\nc  \n") == "a b\nc\n"


def test_vocabulary_has_specials_first_and_respects_min_count_and_size():
    tok = Tokenizer.fit(["a", "b", "a", "c", "a", "b"], min_count=2)
    assert tok.vocab == [PAD, UNK, "a", "b"]
    assert tok.encode(["a", "zzz"]) == [2, 1]
    assert Tokenizer.fit(["a", "b", "a", "c"], max_size=3).vocab == [PAD, UNK, "a"]


def test_tokenizer_serialises():
    tok = Tokenizer.fit(tokenize_words("the sea, the sea\nand the sky"))
    again = Tokenizer.from_json(tok.to_json())
    assert again.vocab == tok.vocab and again.mode == tok.mode


def test_whitespace_mode_keeps_tokens_and_counts_lines():
    tok = Tokenizer(mode="whitespace")
    assert tok.split(" the <unk> cat\n a dog \n") == ["the", "<unk>", "cat", NEWLINE, "a", "dog", NEWLINE]
    assert tok.join(["the", "cat", NEWLINE, "a"]) == "the cat\na"


@pytest.mark.skipif(not PTB_TEST.exists(), reason="needs ../shared/data/ptb")
def test_whitespace_mode_counts_ptb_test_as_the_papers_do():
    assert len(Tokenizer(mode="whitespace").split(PTB_TEST.read_text())) == 82_430


def test_unknown_tokenizer_mode_is_refused():
    with pytest.raises(ValueError, match="unknown tokenizer mode"):
        Tokenizer(mode="chars")


@pytest.mark.parametrize(
    "prompt, tokens, expected",
    [
        ("The sea", [",", "and", "the", "sky"], ", and the sky"),
        ("The sea ", ["and", "more"], "and more"),
        ('She said "', ["come", "home", '"', "and"], 'come home" and'),
        ("", ["The", "tide"], "The tide"),
        ("The sea\n", ["And", "so"], "And so"),
    ],
)
def test_a_continuation_is_spaced_after_its_prompt_at_once_or_token_by_token(prompt, tokens, expected):
    tokenizer = Tokenizer()
    assert tokenizer.continuation(prompt).text(tokens) == expected
    spacing = tokenizer.continuation(prompt)
    assert "".join(spacing.add(t) for t in tokens) == expected


@pytest.mark.parametrize(
    "text, stem",
    [
        ("The li", "li"),
        ("The li ", ""),
        ("The sea,", ""),
        ("", ""),
        ("don't", "don't"),
        ("salt-wh", "salt-wh"),
    ],
)
def test_the_unfinished_word_is_the_last_one_still_being_typed(text, stem):
    assert Tokenizer().unfinished_word(text) == stem
