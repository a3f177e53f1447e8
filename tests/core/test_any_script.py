"""Models of text in a script without spaces: seeds never seen whole, scripts never seen at all, old bundles."""

import pytest
from testdata import CHINESE

from core import SeedError, TrainConfig, build_instant, load
from core.cli import main
from core.store import DEFAULT_MODEL_PATH


@pytest.fixture(scope="module")
def chinese_model(tmp_path_factory):
    """The instant n-gram model of an original Chinese text (repeated to the minimum size): counted in a second."""
    out = tmp_path_factory.mktemp("models") / "chinese"
    build_instant(CHINESE * 12, out, TrainConfig(min_count=1), corpus_name="chinese")
    return out


def test_a_seed_never_seen_whole_continues_in_chinese_without_spaces(chinese_model):
    model = load(chinese_model)
    assert "春风" not in CHINESE
    for text in model.generate("春风", max_new_tokens=12, num_return_sequences=3, do_sample=True, seed=1):
        assert text and " " not in text and "\x00" not in text
        assert any("\u4e00" <= c <= "\u9fff" for c in text)
    assert (
        "".join(model.stream("我喜欢", max_new_tokens=8, do_sample=True, seed=2))
        == model.generate("我喜欢", max_new_tokens=8, do_sample=True, seed=2)[0]
    )


def test_a_seed_in_a_script_the_model_never_saw_gets_one_line_naming_it(chinese_model, capsys):
    model = load(chinese_model)
    with pytest.raises(SeedError, match="the model has never seen Thai text; train it on text in that script"):
        model.generate("ไปไหนมา")
    assert main(["generate", "ไปไหนมา", "-m", str(chinese_model)]) == 2
    out, err = capsys.readouterr()
    assert "never seen Thai text" in err and len(err.strip().splitlines()) == 1


def test_candidates_after_a_han_character_are_next_characters_not_completions(chinese_model):
    model = load(chinese_model)
    assert model.tokenizer.unfinished_word("春") == ""
    found = model.candidates("春", 5, partial=True)
    assert found and all(c.token not in (" ", "\x00glue") for c in found)
    assert "天" in [c.token for c in found]  # 春天 is in the text: 天 follows 春


def test_the_shipped_default_model_keeps_its_old_segmentation_and_generates():
    model = load(DEFAULT_MODEL_PATH)
    assert model.tokenizer.segmentation == 1
    assert model.generate("The sea", max_new_tokens=5, seed=1)[0].strip()
    with pytest.raises(SeedError, match="never seen Chinese"):
        model.generate("春风")
