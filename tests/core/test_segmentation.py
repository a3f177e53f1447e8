"""Segmentation of every script: clusters never cut, scripts without spaces one cluster a token, exact spacing."""

import string

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tokenizer import (
    _TOKEN,
    _TOKEN_ASCII,
    DEPARTURES,
    GLUE,
    NEWLINE,
    SPACE,
    Tokenizer,
    detokenize_words,
    normalize,
    tokenize_words,
)


def _chars(first: int, last: int) -> list[str]:
    return [chr(c) for c in range(first, last + 1)]


HAN = list("春风又绿江南岸明月何时照我还吾輩猫名前無国語学生中文字")
HIRAGANA = _chars(0x3041, 0x3093)
KATAKANA = _chars(0x30A1, 0x30F6) + ["ー", "・"]
HALF_KATAKANA = _chars(0xFF66, 0xFF9D) + ["ﾞ", "ﾟ"]  # the voiced marks join the letter before them
THAI = _chars(0x0E01, 0x0E2E) + _chars(0x0E30, 0x0E3A) + _chars(0x0E40, 0x0E4E)  # letters, vowels, tone marks
LAO = _chars(0x0E81, 0x0E84) + _chars(0x0EB0, 0x0EBC) + _chars(0x0EC8, 0x0ECD)
KHMER = _chars(0x1780, 0x17A2) + _chars(0x17B6, 0x17D2)
MYANMAR = _chars(0x1000, 0x102A) + _chars(0x102B, 0x103E)
TIBETAN = _chars(0x0F40, 0x0F6C) + _chars(0x0F71, 0x0F84)
DEVANAGARI = _chars(0x0915, 0x0939) + _chars(0x093E, 0x094D)  # consonants, matras and the virama
HANGUL = list("안녕하세요세계한국어")
LATIN = list(string.ascii_letters) + list("éèüßøñçTiếngViệt")
COMBINING = _chars(0x0300, 0x0310) + ["\u0e31", "\u093f", "\u20e3"]
DIGITS = list("0123456789")
PUNCTUATION = list(".,;:!?\"'()-—…") + list("。、「」『』！？（）：；，")
EMOJI = ["👍", "🎉", "😂", "❤", "👨", "👩", "👧", "🏳", "🌈", "#", "1"]
EMOJI_TAILS = ["\U0001f3fb", "\U0001f3fd", "\ufe0f", "\ufe0e", "\u200d", "\U000e0100"]  # skin, VS16/15, ZWJ, IVS
FLAGS = _chars(0x1F1E6, 0x1F1FF)  # regional indicators: a pair is a flag
SPACES = [" ", " ", "  ", "\n", "\t", "\u00a0", "\u3000", "\r\n"]

_ALPHABET = HAN + HIRAGANA + KATAKANA + HALF_KATAKANA + THAI + LAO + KHMER + MYANMAR + TIBETAN + DEVANAGARI + HANGUL
_ALPHABET += LATIN + COMBINING + DIGITS + PUNCTUATION + EMOJI + EMOJI_TAILS + FLAGS + SPACES
_word = st.text(st.sampled_from(LATIN), min_size=1, max_size=8)
_number = st.from_regex(r"[0-9]{1,4}(?:[.,:][0-9]{1,3})?", fullmatch=True)
_zwj_sequence = st.lists(st.sampled_from(EMOJI), min_size=2, max_size=4).map("\u200d".join)
_flag = st.tuples(st.sampled_from(FLAGS), st.sampled_from(FLAGS)).map("".join)
_cluster_heavy = st.text(st.sampled_from(THAI + KHMER + MYANMAR + TIBETAN + DEVANAGARI + COMBINING), max_size=6)
_piece = st.one_of(
    st.sampled_from(_ALPHABET),
    _word,
    _number,
    _zwj_sequence,
    _flag,
    _cluster_heavy,
    st.text(st.sampled_from(HAN + HIRAGANA + KATAKANA), min_size=1, max_size=6),
)
mixed_text = st.lists(_piece, max_size=25).map("".join)  # any order: marks after spaces, flags cut in half, ...


def _spans(text: str, tokens: list[str]) -> list[tuple[int, int]]:
    """Where each token (not a departure) lies in the normalized text, checking that only spaces lie between."""
    spans, pos = [], 0
    for tok in tokens:
        if tok in DEPARTURES:
            continue
        if not text.startswith(tok, pos):
            assert text[pos] == " " and text.startswith(tok, pos + 1), (text, pos, tok)
            pos += 1
        spans.append((pos, pos + len(tok)))
        pos += len(tok)
    assert pos == len(text)
    return spans


def _cluster_boundaries(text: str) -> set[int]:
    bounds, pos = {0}, 0
    for cluster in regex.findall(r"\X", text):
        pos += len(cluster)
        bounds.add(pos)
    return bounds


@settings(max_examples=400, deadline=None)
@given(mixed_text)
def test_a_cluster_is_never_cut_apart_and_the_text_comes_back_exactly(text):
    norm = normalize(text)
    tokens = tokenize_words(text)
    bounds = _cluster_boundaries(norm)
    for start, end in _spans(norm, tokens):
        assert start in bounds and end in bounds, (norm, norm[start:end])
    assert detokenize_words(tokens) == norm  # so join never inserts a space the text did not have
    assert normalize(norm) == norm


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_any_text_comes_back_exactly_and_its_tokens_split_again_the_same(text):
    tokens = tokenize_words(text)
    assert detokenize_words(tokens) == normalize(text)
    assert tokenize_words(detokenize_words(tokens)) == tokens
    bounds = _cluster_boundaries(normalize(text))
    assert all(s in bounds and e in bounds for s, e in _spans(normalize(text), tokens))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(st.sampled_from(HAN + HIRAGANA + KATAKANA + THAI + list("。、！？「」")), min_size=1), max_size=8)
)
def test_text_without_spaces_is_joined_without_spaces_and_without_departures(lines):
    text = "\n".join(lines)
    tokens = tokenize_words(text)
    assert not set(tokens) & set(DEPARTURES)
    assert " " not in detokenize_words(tokens)


@settings(max_examples=200, deadline=None)
@given(mixed_text, st.integers(0, 40))
def test_a_continuation_streamed_token_by_token_reads_as_the_whole_text(text, cut):
    tokenizer = Tokenizer()
    tokens = tokenizer.split(text)
    cut = min(cut, len(tokens))
    while 0 < cut < len(tokens) and tokens[cut - 1] in DEPARTURES:
        cut -= 1
    prompt = tokenizer.join(tokens[:cut])
    rest = tokens[cut:]
    assert prompt + tokenizer.continuation(prompt).text(rest) == normalize(text)
    spacing = tokenizer.continuation(prompt)
    assert prompt + "".join(spacing.add(t) for t in rest) == normalize(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=80))
def test_ascii_lines_read_by_the_fast_pattern_give_the_same_tokens(text):
    text = normalize(text)
    assert [m.group() for m in _TOKEN_ASCII.finditer(text)] == [m.group() for m in _TOKEN.finditer(text)]


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("吾輩は猫である。名前はまだ無い。", list("吾輩は猫である。名前はまだ無い。")),
        ("我喜欢Python和3.11版本", ["我", "喜", "欢", "Python", "和", "3.11", "版", "本"]),
        ("我喜欢 Python", ["我", "喜", "欢", SPACE, "Python"]),
        ("ｶﾞｷﾞ！", ["ｶﾞ", "ｷﾞ", "！"]),
        (
            "ไปไหนมา กินข้าวหรือยัง",
            ["ไ", "ป", "ไ", "ห", "น", "ม", "า", SPACE, "กิ", "น", "ข้", "า", "ว", "ห", "รื", "อ", "ยั", "ง"],
        ),
        ("안녕하세요 세계", ["안녕하세요", "세계"]),
        ("Tiếng Việt có dấu", ["Tiếng", "Việt", "có", "dấu"]),
        ("नमस्ते दुनिया, क्षत्रिय", ["नमस्ते", "दुनिया", ",", "क्षत्रिय"]),
        ("Привет, мир!", ["Привет", ",", "мир", "!"]),
        ("ok 👍🏽 🇯🇵🇫🇷 👨\u200d👩\u200d👧 ❤️", ["ok", "👍🏽", "🇯🇵", GLUE, "🇫🇷", "👨\u200d👩\u200d👧", "❤\ufe0f"]),
        ("e\u0301 a,b", ["é", "a", ",", GLUE, "b"]),
        ("東京 2020で優勝🎉!", ["東", "京", SPACE, "2020", "で", "優", "勝", "🎉", "!"]),
    ],
)
def test_each_script_is_cut_naturally(text, tokens):
    assert tokenize_words(text) == tokens
    assert detokenize_words(tokens) == normalize(text)


def test_old_vocabularies_keep_the_segmentation_they_were_made_with():
    old = Tokenizer.from_json('{"mode": "words", "vocab": ["\\u0000pad", "\\u0000unk", "吾輩は猫である"]}')
    assert old.segmentation == 1
    assert old.split("吾輩は猫である。") == ["吾輩は猫である", "。"]
    assert old.join(["吾輩は猫である", "。", "a"]) == "吾輩は猫である 。 a"  # as bundles made before spaced it
    new = Tokenizer.from_json(Tokenizer(vocab=["\x00pad", "\x00unk", "猫"]).to_json())
    assert new.segmentation == 2 and new.split("猫。") == ["猫", "。"]


@pytest.mark.parametrize(
    "text, stem",
    [
        ("春风", ""),  # a Han character is a whole token
        ("名前はまだ", ""),
        ("ไปไหนม", "ม"),  # a vowel or tone mark may still join it
        ("नमस्त", "नमस्त"),
        ("The li", "li"),
        ("我喜欢Pyth", "Pyth"),
        ("我喜欢。", ""),
    ],
)
def test_the_unfinished_word_where_words_have_no_spaces_between_them(text, stem):
    assert Tokenizer().unfinished_word(text) == stem


@pytest.mark.parametrize(
    "text, leading",
    [(" harbour, and", " harbour"), ("\nand the", "\nand"), ("又绿江南岸", "又"), (" กินข้าว", " กิ"), ("3.14 m", "3.14")],
)
def test_the_leading_token_of_a_text(text, leading):
    assert Tokenizer().leading(text) == leading


def test_a_seed_in_a_script_the_vocabulary_never_had_is_named():
    tokenizer = Tokenizer(vocab=["\x00pad", "\x00unk", "春", "风", "the"])
    assert tokenizer.unseen_script("ไปไหน") == "Thai"
    assert tokenizer.unseen_script("夏天") is None  # Han is known, only these characters are not
    assert tokenizer.unseen_script("Привет") == "Cyrillic"
    assert tokenizer.unseen_script("!!") is None


def test_line_breaks_reset_an_open_quote():
    assert tokenize_words('He said "yes\nand no') == ["He", "said", '"', "yes", NEWLINE, "and", "no"]


def test_departures_are_in_the_vocabulary_however_rare():
    tokens = tokenize_words("a,b and a b and a b and 我 喜欢")
    assert tokens.count(GLUE) == 1 and tokens.count(SPACE) == 2
    tokenizer = Tokenizer.fit(tokens, min_count=3)
    assert GLUE in tokenizer.vocab and SPACE in tokenizer.vocab and "我" not in tokenizer.vocab
