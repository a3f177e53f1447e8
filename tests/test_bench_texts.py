"""The benchmark texts' cleaning, on small texts made here: no registry is reached."""

import pytest

from bench import texts


def test_song_ci_one_verse_line_per_line_and_a_blank_line_between_ci():
    pieces = [
        {"author": "a", "rhythmic": "导引", "paragraphs": ["气和玉烛，睿化著鸿明。", " 缇管一阳生。 ", ""]},
        {"author": "b", "rhythmic": "六州", "paragraphs": ["严夜警，□□□。"]},  # an unreadable character
        {"author": "c", "rhythmic": "十二时", "paragraphs": ["日月并文明。"]},
    ]
    assert texts.song_ci_from_json(pieces) == "气和玉烛，睿化著鸿明。\n缇管一阳生。\n\n日月并文明。\n\n"


def test_paragraphs_one_per_line_without_the_named_ends_or_lines_without_letters():
    raw = "Copyright\n\nLicence\r\n\nPrvní  odstavec\xadtext.\n\n| | - - + - - |\n\n 2 3 \n\nDruhý.\n\nDasher\n"
    assert texts.paragraphs(raw, drop_first=2, drop_last=1) == "První odstavectext.\nDruhý.\n"


def test_a_text_that_is_not_the_cited_one_is_refused():
    with pytest.raises(RuntimeError, match="not the text this benchmark cites"):
        texts.checked(b"something else", texts.CHINESE_POETRY_SHA256, "npm chinese-poetry")


def test_the_cache_is_outside_the_repository_and_can_be_moved(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTINUO_BENCH_TEXTS", str(tmp_path))
    (tmp_path / "hebrew.txt").write_text("כמו מתוך הערפל\n", "utf-8")
    assert texts.path("hebrew") == tmp_path / "hebrew.txt"  # a cleaned text is read, never fetched again
    assert texts.text("hebrew") == "כמו מתוך הערפל\n"
