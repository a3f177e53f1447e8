"""Reading user files and building training windows."""

import numpy as np
import pytest

from core import InputFileError, bundled_corpora, decode_text, read_text
from core.data import context_windows, sequences_dataset, windows_dataset


def test_read_text_refuses_bad_files_with_one_line(tmp_path):
    cases = {
        "missing.txt": None,
        "empty.txt": b"",
        "blank.txt": b"   \n\n",
        "binary.bin": bytes(range(256)) * 4,
        "latin1.txt": "caf\xe9 au lait".encode("latin-1"),
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(InputFileError) as err:
            read_text(path)
        assert "\n" not in str(err.value) and name in str(err.value)
    with pytest.raises(InputFileError, match="is a folder"):
        read_text(tmp_path)


def test_read_text_refuses_over_large_files(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(InputFileError, match="over the 0.001 MB limit"):
        read_text(path, max_mb=0.001)


def test_decode_text_accepts_utf8_with_bom():
    assert decode_text("\ufeffhéllo".encode("utf-8")) == "héllo"


def test_bundled_corpora_are_ours_and_large_enough():
    corpora = {c.name: c for c in bundled_corpora()}
    assert {"verse", "chat"} <= set(corpora)
    for corpus in corpora.values():
        assert len(corpus.path.read_text("utf-8").split()) >= 10_000
        assert corpus.card


def test_windows_pair_each_position_with_the_tokens_before_it():
    ids = np.arange(2, 12, dtype=np.int32)  # 10 tokens
    batches = list(windows_dataset(ids, window=4, batch_size=3, shuffle=False, seed=0))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.shape == (10, 4) and y.tolist() == ids.tolist()
    assert x[0].tolist() == [0, 0, 0, 0]  # the first token is predicted from padding alone
    assert x[5].tolist() == [3, 4, 5, 6] and y[5] == 7
    assert (x == context_windows(ids, 4)).all()


def test_windows_are_shuffled_reproducibly_and_cover_every_position():
    ids = np.arange(2, 502, dtype=np.int32)

    def labels(seed):
        return np.concatenate([b[1].numpy() for b in windows_dataset(ids, 8, 64, shuffle=True, seed=seed)])

    first = labels(7)
    assert sorted(first.tolist()) == ids.tolist()
    assert first.tolist() != ids.tolist()
    assert labels(7).tolist() == first.tolist()


def test_short_context_windows_keep_only_their_last_tokens():
    ids = np.arange(2, 2002, dtype=np.int32)
    x = np.concatenate(
        [b[0].numpy() for b in windows_dataset(ids, 8, 256, shuffle=False, seed=0, short_context_rate=1.0)]
    )[8:]
    kept = (x != 0).sum(axis=1)
    assert 0 < kept.min() and kept.max() <= 8 and len(set(kept.tolist())) > 4
    for row in x[:50]:  # zeros only ever on the left
        nonzero = np.flatnonzero(row)
        assert nonzero.tolist() == list(range(nonzero[0], 8))


def test_sequences_predict_every_next_token_and_cover_the_text():
    ids = np.arange(2, 23, dtype=np.int32)  # 21 tokens
    batches = list(sequences_dataset(ids, window=4, batch_size=2, shuffle=False, seed=0))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.shape == y.shape == (6, 4)
    assert (y[:, :-1] == x[:, 1:]).all()  # each target is the token after its position
    assert x[0].tolist() == [2, 3, 4, 5] and y[0].tolist() == [3, 4, 5, 6]
    assert sorted(set(y[y > 0].tolist())) == ids[1:].tolist()  # every token but the first is a target
    assert (y[-1] == 0).sum() > 0  # past the end: padding targets, which weigh nothing


def test_shifted_and_shortened_sequences_stay_aligned():
    ids = np.arange(2, 202, dtype=np.int32)
    for x, y in sequences_dataset(ids, window=8, batch_size=5, shuffle=True, seed=1, short_context_rate=1.0):
        x, y = x.numpy(), y.numpy()
        real = x > 0
        assert ((y == x + 1) | ~real | (y == 0)).all()  # consecutive ids: the target is the id plus one
        assert (y[~real] == 0).all()  # no target is predicted from padding
