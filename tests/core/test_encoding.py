"""Tokenizing a corpus in pieces gives exactly the ids and vocabulary of tokenizing it whole."""

import numpy as np
import pytest
from testdata import CHAT, VERSE

from core.encoding import encode_corpus, encode_text, pieces
from core.tokenizer import Tokenizer

TRICKY = (
    'Don\'t stop :) at 12:30pm — see https://example.com/a_b.\r\n  Two  spaces \u00a0here; "quoted"...\n'
    "salt-white 3.14 e\u0301clair 👍🏽 x\n\n\nlast line without a break"
)


@pytest.mark.parametrize("mode", ["words", "whitespace"])
@pytest.mark.parametrize("size", [7, 64, 1 << 20])
def test_pieces_give_the_same_ids_and_vocabulary_as_the_whole_text(mode, size, monkeypatch):
    import core.encoding as encoding

    text = VERSE.read_text("utf-8")[:20000] + TRICKY + CHAT.read_text("utf-8")[:5000]
    monkeypatch.setattr(encoding, "PIECE_CHARS", size)
    assert "".join(pieces(text, mode, size)) == text
    tokens = Tokenizer(mode=mode).split(text)
    cut = int(len(tokens) * 0.9)
    expected = Tokenizer.fit(tokens[:cut], mode, min_count=2, max_size=300)
    tokenizer, ids, got_cut = encode_corpus(text, mode, min_count=2, max_size=300, fit_share=0.9)
    assert got_cut == cut and tokenizer.vocab == expected.vocab
    np.testing.assert_array_equal(ids, np.array(expected.encode(tokens), np.int32))
    np.testing.assert_array_equal(encode_text(tokenizer, TRICKY), np.array(expected.encode(TRICKY), np.int32))


@pytest.mark.parametrize("size", [5, 64])
def test_a_text_without_spaces_or_line_breaks_is_cut_between_characters_and_still_gives_the_whole_texts_ids(
    size, monkeypatch
):
    from testdata import CHINESE

    import core.encoding as encoding

    text = (CHINESE.replace("\n", "") + '他说"好 Python 3.11"，ไปไหนมา กินข้าวหรือยัง👍🏽') * 3
    monkeypatch.setattr(encoding, "PIECE_CHARS", size)
    parts = list(pieces(text, "words", size))
    assert "".join(parts) == text and max(len(p) for p in parts) <= size + len("Python")
    tokens = Tokenizer().split(text)
    expected = Tokenizer.fit(tokens, "words")
    tokenizer, ids, _ = encode_corpus(text, "words")
    assert tokenizer.vocab == expected.vocab
    np.testing.assert_array_equal(ids, np.array(expected.encode(tokens), np.int32))
    np.testing.assert_array_equal(encode_text(tokenizer, text), ids)
