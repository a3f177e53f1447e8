"""Paths and sizes shared by the test packages (importable as `testdata`: pytest puts tests/ on sys.path)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"  # read-only reference corpora, by relative path
VERSE = REPO / "corpora" / "verse" / "corpus.txt"
CHAT = REPO / "corpora" / "chat" / "corpus.txt"

TINY_MODEL = dict(window=8, embedding_dim=16, units=16)  # trains in seconds on 2 cores
TINY_TRAIN = dict(epochs=1, batch_size=256, min_count=2)
