"""The spelling model and bits per character: every string has a probability, all of them add up to 1, an unknown
word costs what its letters cost, and bundles from before spelling models still load, generate and evaluate."""

import itertools
import json
import math
import shutil

import numpy as np
import pytest
from testdata import VERSE

from core import build_instant, load, read_text
from core.bundle import CONFIG_FILE, SPELLING_FILE, load_bundle
from core.cli import main
from core.encoding import encode_corpus_words
from core.spelling import UNICODE, SpellingModel, cache_log_probs, spelling_weights, text_as_read
from core.store import DEFAULT_MODEL_PATH
from core.tokenizer import SPECIALS, UNK, Tokenizer

# Written for this test (an original short story, not copied from anywhere): a few hundred words of Russian.
RUSSIAN = """Старый рыбак жил на берегу широкой реки, недалеко от маленькой деревни. Каждое утро он вставал до
рассвета, брал свои сети и спускался к воде. Туман медленно поднимался над рекой, и лодки у причала казались
серыми тенями.
Жена рыбака пекла хлеб и варила суп из картошки и лука. Дети бегали по двору, кормили кур и собирали яблоки в
саду. Соседи часто приходили к ним вечером, садились за длинный деревянный стол и рассказывали новости.
Однажды осенью река поднялась выше обычного. Вода залила луга и дорогу к мельнице. Рыбак долго смотрел на
тёмные волны и думал о том, что зима будет холодной.
— Надо починить крышу, пока не пошёл снег, — сказал он жене.
— А кто поможет? Сын уехал в город, а у соседа болит спина.
— Справлюсь сам. Руки ещё крепкие.
Он достал из сарая доски, гвозди и молоток. Целую неделю он работал с утра до вечера, и к первому снегу крыша
была готова. Жена принесла ему горячий чай с мёдом, и они долго сидели на крыльце, глядя, как падают белые
хлопья.
Зимой деревня становилась тихой. Дым поднимался из труб, собаки лаяли на проезжающие сани, а по вечерам в
окнах горел тёплый жёлтый свет. Рыбак чинил сети, вырезал ложки из берёзы и учил внука вязать узлы.
— Дедушка, а почему рыба не замерзает подо льдом? — спрашивал мальчик.
— Потому что на дне вода теплее, чем наверху. Река всегда бережёт своих жителей.
Весной лёд на реке треснул с громким звуком, похожим на выстрел. Льдины плыли мимо деревни, сталкивались и
ломались. Птицы вернулись с юга, и в лесу запели соловьи. Рыбак снова спустил лодку на воду и поплыл вверх по
течению, туда, где за поворотом начинались густые камыши и глубокие омуты.
Там он поймал огромную щуку. Вся деревня пришла посмотреть на неё, а вечером соседи снова собрались за длинным
столом. Говорили о погоде, о ценах на рынке, о свадьбе дочери кузнеца. Рыбак улыбался и молчал: он знал, что
лучшие истории рассказывает сама река.
"""
NEW_WORD = "переплывали"  # a plausible Russian form that the story never uses


def enumerate_mass(model: SpellingModel, letters: str, unseen: str, longest: int) -> tuple[float, float]:
    """(P of every string of at most `longest` symbols, P that a string is longer), over the seen `letters` and
    every code point never seen, which all behave alike: `unseen` stands for them, its probability counted
    UNICODE - len(letters) times. The two add up to 1 exactly when every step's distribution does."""
    others = UNICODE - len(letters)
    symbols = list(letters) + [unseen]

    def times(s: str) -> float:
        return float(others) ** s.count(unseen)

    short = 0.0
    for n in range(longest + 1):
        strings = ["".join(t) for t in itertools.product(symbols, repeat=n)]
        short += float(np.sum(np.exp(model.log_probs(strings)) * [times(s) for s in strings]))
    longer = 0.0  # P(the first longest + 1 symbols are s, whatever follows), summed over s
    for t in itertools.product(range(len(symbols)), repeat=longest + 1):
        prefix = "".join(symbols[i] for i in t)
        p = 1.0
        for k, i in enumerate(t):
            p *= model.next_probabilities(prefix[:k])[i + 1]  # symbol 0 is the end; the last one: all unseen
        longer += p
    return short, longer


@pytest.mark.parametrize("order", [1, 2, 3, 6])
def test_the_probabilities_of_all_strings_add_up_to_one(order):
    model = SpellingModel.fit(["ab", "ba", "aab", "b", "abba", "a", "ab", "bbb"], [1, 1, 2, 1, 1, 3, 1, 1], order)
    assert model.alphabet == "ab"
    short, longer = enumerate_mass(model, "ab", "\u4e00", longest=4)
    assert 0.5 < short < 1 and longer > 0
    assert short + longer == pytest.approx(1.0, abs=1e-12)
    for prefix in ["", "a", "ab", "bab", "\u4e00", "a\u4e00b"]:  # every step's distribution, unseen letters included
        p = model.next_probabilities(prefix)
        assert p.min() > 0 and p.sum() == pytest.approx(1.0, abs=1e-12)
    # log_probs is the product of those steps and the end
    word = "ab\u4e00a"
    steps = sum(
        math.log(model.next_probabilities(word[:k])[model.symbols(word[k])[0]]) for k in range(len(word))
    ) - math.log(UNICODE - 2)
    assert model.log_probs([word])[0] == pytest.approx(steps + math.log(model.next_probabilities(word)[0]))


def test_excluding_the_vocabulary_spreads_its_probability_over_the_other_strings():
    model = SpellingModel.fit(["ab", "ba", "aab", "abba", "a"], order=3)
    excluded = ["", "a", "ab", "ba"]
    outside = model.excluding(excluded)
    short, longer = enumerate_mass(model, "ab", "\u4e00", longest=3)
    kept = sum(math.exp(model.log_probs([s])[0]) for s in excluded)
    # every excluded string is short, so the strings left add up to (short - kept + longer) under the model
    assert (short - kept + longer) * math.exp(outside.log_probs(["bb"])[0] - model.log_probs(["bb"])[0]) == (
        pytest.approx(1.0, abs=1e-12)
    )
    assert outside.log_probs(["bbb"])[0] > model.log_probs(["bbb"])[0]


def test_a_round_trip_through_a_file_keeps_every_probability(tmp_path):
    words = Tokenizer().split(RUSSIAN)
    model = SpellingModel.fit(words)
    model.save(tmp_path / "spelling.npz")
    copy = SpellingModel.load(tmp_path / "spelling.npz")
    probe = [NEW_WORD, "мир", "дом\u4e00", "", "x"]
    assert copy.alphabet == model.alphabet and copy.order == model.order
    np.testing.assert_allclose(copy.log_probs(probe), model.log_probs(probe), rtol=1e-12)


def test_a_russian_word_never_seen_is_scored_by_its_spelling():
    tokenizer, _, _, words = encode_corpus_words(RUSSIAN, min_count=2)
    assert NEW_WORD not in words.types and NEW_WORD not in tokenizer.index
    spelling = SpellingModel.fit(words.types, spelling_weights(words.counts, words.known)).excluding(tokenizer.vocab)
    letters = sorted(set(spelling.alphabet) & set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"))
    rng = np.random.default_rng(0)
    scrambled = ["".join(rng.choice(letters, len(NEW_WORD))) for _ in range(50)]
    plausible = spelling.log_probs([NEW_WORD, "переходила", "рыбаками"])
    assert plausible.min() > spelling.log_probs(scrambled).max()  # likelier than any random string of its letters
    never_seen_script = spelling.log_probs(["渡過了河流的人們很多"])[0]
    assert plausible.min() > never_seen_script + 50


def test_bits_per_character_charge_an_unknown_word_its_spelling(tmp_path):
    result = build_instant(RUSSIAN * 6, tmp_path / "ru", corpus_name="story")
    model = load(result.path)
    assert model.spelling is not None and result.card.spelling_order == model.spelling.order
    plausible = model.perplexity(f"Рыбак {NEW_WORD} воду.")
    scrambled = model.perplexity("Рыбак ъщйьыжэцюяф воду.")  # as many letters, in no Russian order
    assert plausible.unknown == scrambled.unknown == 1 and plausible.characters == scrambled.characters
    assert plausible.perplexity == pytest.approx(scrambled.perplexity)  # tokens alone cannot tell them apart
    assert plausible.bits_per_character < scrambled.bits_per_character - 1  # their spellings can
    scored = model.read_for_scoring(f"Рыбак {NEW_WORD} воду.")
    unknown = np.flatnonzero(scored.ids == 1)
    assert scored.spelling_log_probs[unknown] == pytest.approx(model.spelling_model().log_probs([NEW_WORD]))
    # <unk> is never generated, though the model knows it well
    texts = model.generate("Рыбак", max_new_tokens=200, do_sample=True, temperature=3.0, top_k=0, seed=1)
    assert UNK not in texts[0] and SPECIALS[0] not in texts[0]


def test_bits_per_character_are_log2_perplexity_times_tokens_per_character_without_unknown_words(tmp_path):
    text = read_text(VERSE)
    model = load(build_instant(text, tmp_path / "verse").path)
    known = [w for w in model.tokenizer.vocab[len(SPECIALS) : 400]]
    sample = model.tokenizer.join(known)
    e = model.perplexity(sample)
    assert e.unknown == 0 and e.characters == len(text_as_read(model.tokenizer, sample))
    assert e.bits_per_character == pytest.approx(math.log2(e.perplexity) * e.tokens / e.characters, rel=1e-12)
    with_unknown = model.perplexity(sample + " Zanzibarque")
    assert with_unknown.unknown == 1
    # the unknown word costs P(unknown) and its spelling: more than P(unknown) alone
    assert with_unknown.bits_per_character > math.log2(with_unknown.perplexity) * with_unknown.tokens / (
        with_unknown.characters
    )


def test_eval_json_reports_bits_per_character(tmp_path, capsys):
    path = build_instant(read_text(VERSE), tmp_path / "verse").path
    held_out = tmp_path / "held-out.txt"
    held_out.write_text("The harbour at Wenlow was quiet, and Zanzibarque sailed.\n", "utf-8")
    assert main(["eval", str(held_out), "-m", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["spelling"] == "bundle" and result["unknown"] >= 1
    assert result["characters"] == len(held_out.read_text("utf-8"))  # normalizing changes nothing here
    assert 0 < result["bits_per_character"] < 30
    assert main(["eval", str(held_out), "-m", str(path)]) == 0
    assert "bits per character" in capsys.readouterr().out


def test_the_shipped_default_model_from_before_spelling_models_loads_generates_and_evaluates(tmp_path, capsys):
    bundle = load_bundle(DEFAULT_MODEL_PATH)
    assert bundle.spelling is None  # saved in format 1
    model = load(DEFAULT_MODEL_PATH, xla=False)
    assert model.generate("The harbour at Wenlow", max_new_tokens=5, seed=1)[0]
    held_out = tmp_path / "held-out.txt"
    held_out.write_text(read_text(VERSE)[:600] + " Zanzibarque.\n", "utf-8")
    assert main(["eval", str(held_out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["spelling"] == "vocabulary" and result["unknown"] >= 1 and 0 < result["bits_per_character"] < 30
    assert main(["eval", str(held_out)]) == 0
    assert "saved before spelling models" in capsys.readouterr().out  # and says where its spelling came from


def test_a_format_2_bundle_without_a_spelling_model_loads_and_is_spelled_from_its_vocabulary(tmp_path):
    path = build_instant(read_text(VERSE), tmp_path / "new").path
    old = tmp_path / "old"
    shutil.copytree(path, old)
    (old / SPELLING_FILE).unlink()
    config = json.loads((old / CONFIG_FILE).read_text())
    config.pop("spelling")
    (old / CONFIG_FILE).write_text(json.dumps({**config, "format_version": 2}))
    model = load(old)
    assert model.spelling is None
    e = model.perplexity("The harbour at Zanzibarque.")
    assert e.spelling == "vocabulary" and e.unknown == 1 and math.isfinite(e.bits_per_character)
    assert e.perplexity == pytest.approx(load(path).perplexity("The harbour at Zanzibarque.").perplexity)


def test_the_unknown_word_cache_keeps_one_distribution_and_spells_a_repeated_name_once():
    universe = {"x": 0.5, "y": 0.3, "z": 0.2}  # a spelling model over three strings, for the sums to be exact
    history = ["x", "x", "y", "x"]
    for concentration, discount in [(1.0, 0.0), (100.0, 0.8), (0.5, 0.95)]:
        total = 0.0
        for word in universe:
            words = [*history, word]
            log_p = cache_log_probs(words, np.log([universe[w] for w in words]), concentration, discount)
            total += math.exp(log_p[-1])
        assert total == pytest.approx(1.0, abs=1e-12)
    tokenizer, _, _, words = encode_corpus_words(RUSSIAN, min_count=2)
    spelling = SpellingModel.fit(words.types).excluding(tokenizer.vocab)
    names = ["Добрынюшка", "Добрынюшка", "Добрынюшка"]
    cached = cache_log_probs(names, spelling.log_probs(names))
    assert cached[0] == pytest.approx(spelling.log_probs(names[:1])[0])  # the first time: its letters
    assert cached[1] > cached[0] + 10 and cached[2] > cached[1]  # then far cheaper, and cheaper again
