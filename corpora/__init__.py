"""The bundled corpora, shipped as package data: one folder per corpus with corpus.txt and CARD.md."""
