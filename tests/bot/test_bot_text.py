"""Text helpers: generated text never pings, stays within Discord's limits, and the corpus skips commands."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.text import MESSAGE_LIMIT, corpus_text, defang, format_continuations, safe, shorten, turn_text

PINGS = ["@everyone", "@here", "<@123456789012345678>", "<@!123456789012345678>", "<@&123456789012345678>"]


def test_defang_breaks_every_mention_form():
    for mention in PINGS + ["<#123456789012345678>", "@EVERYONE"]:
        out = defang(f"hi {mention} there")
        assert mention not in out and out.replace("\u200b", "") == f"hi {mention} there"


PIECES = st.one_of(st.sampled_from(list("ab @<>&!#everyonhr1234*_\\\n")), st.sampled_from(PINGS))


@given(st.lists(st.lists(PIECES, max_size=400).map("".join), min_size=1, max_size=5))
def test_formatted_continuations_fit_and_never_hold_a_mention(continuations):
    out = format_continuations("@everyone look", continuations)
    assert len(out) <= MESSAGE_LIMIT
    for mention in PINGS:
        assert mention not in out


def test_long_continuations_are_cut_at_a_word_with_an_ellipsis():
    out = format_continuations("Once", [" upon a time" * 400])
    assert len(out) <= MESSAGE_LIMIT and out.startswith("**Once** upon") and out.endswith("…")
    assert shorten("short", 10) == "short"


def test_several_variants_are_numbered_and_all_shown():
    out = format_continuations("Hi", [" there", " you", " all"])
    assert out.splitlines()[0] == "`1.` **Hi** there" and "`3.` **Hi** all" in out


def test_corpus_text_skips_commands_and_strips_mentions():
    assert corpus_text("!play some song") is None
    assert corpus_text("/help") is None
    assert corpus_text("") is None
    assert corpus_text("<@42> continue this", bot_id=42) is None
    assert corpus_text("hey <@99> look at <#5> @everyone") == "hey look at"
    assert corpus_text("nice <:blob:1234567>") == "nice :blob:"
    assert corpus_text("...well okay") == "...well okay"


@given(st.text(alphabet=st.sampled_from(list("ab c\n*_`~|>#-[]()")), max_size=60))
def test_the_bots_own_message_reads_back_as_the_turn_it_wrote(text):
    """A turn is posted with `safe` (markdown escaped, mentions broken) and read back from the chain with turn_text."""
    expected = re.sub(r"[ \t]{2,}", " ", text).strip()
    assert turn_text(safe(text), own=True) == expected


def test_a_members_message_as_a_turn_drops_mentions_and_emoji_ids():
    assert turn_text("<@123> the ferry <:boat:456> leaves <@&7> at <#8> seven") == "the ferry :boat: leaves at seven"
    assert turn_text("**The tide**comes in \\*slowly\\*", own=True) == "The tidecomes in *slowly*"
