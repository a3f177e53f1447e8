"""Conversations: turn boundaries per corpus shape, kept on the card, and the next turn given the turns so far."""

from __future__ import annotations

import io
import json
import random
import shutil

import numpy as np
import pytest

from core import Conversation, Turn, TurnFormat, build_instant
from core.cli import main

# Small texts of each shape, written for these tests.
CHAT = "\n".join(
    [
        "anyone up for a game tonight?",
        "i'm in after dinner",
        "same, 8pm works",
        "who's bringing snacks",
        "i can bake something",
        "yes please, the lemon bars again",
        "deal :)",
    ]
    * 4
)
VERSE = """The Ferry

The ferry leaves at seven with its lamps,
the river folds behind it like a letter,
and nobody on the bank will wave today.

The gulls have left the jetty to the rain.
The rope is wet, the bollard cold as iron,
and still the ferryman is whistling.

Across the water, someone lights a stove;
the smoke goes sideways, leaning on the wind.
"""
PROSE = """The first time I saw the valley it was under snow, and the road down to it had not been cleared.

We left the car at the top and walked, carrying the bags between us, stopping every hundred yards.

By the time we reached the house the light had gone, and the windows were black squares in the white.

Inside it smelled of old smoke and apples, and the clock on the mantel had stopped at ten past four.
"""
PLAY = """MARLOW:
Is the ship in yet?

TESS:
Not yet, sir. The wind is against her.

MARLOW:
Then we wait, as we always wait.
Fetch me a chair.

TESS:
There is only the one, and the cat has it.
"""
CHAT_LOG = "\n".join(["ana: morning all", "ben: morning!", "ana: coffee first", "cleo: always coffee first"] * 3)


@pytest.mark.parametrize(
    "text, boundary, speakers",
    [
        (CHAT, "line", "none"),  # chat: one message a line
        (VERSE, "paragraph", "none"),  # verse: stanzas between blank lines
        (PROSE, "paragraph", "none"),  # prose: paragraphs between blank lines
        (PLAY, "paragraph", "line"),  # a play: a speaker's name on its own line above the speech
        (CHAT_LOG, "line", "prefix"),  # a chat log: "name: message"
    ],
)
def test_the_turn_boundary_and_speakers_are_measured_from_the_corpus_shape(text, boundary, speakers):
    shape = TurnFormat.measure(text)
    assert (shape.boundary, shape.speakers) == (boundary, speakers)


def test_a_turns_length_limit_follows_the_corpus():
    short, long = TurnFormat.measure(CHAT), TurnFormat.measure(PROSE)
    assert short.turn_tokens < 15 < long.turn_tokens


def test_turns_are_written_as_the_corpus_holds_them_and_read_back():
    play = TurnFormat("paragraph", "line")
    assert play.write(Turn("Is the ship in?\n\nNot yet.", "MARLOW")) == "MARLOW:\nIs the ship in?\nNot yet."
    assert play.read("MARLOW:\nIs the ship in?") == Turn("Is the ship in?", "MARLOW")
    assert play.read("TESS: not yet") == Turn("not yet", "TESS")  # how a person types a speaker
    chat = TurnFormat("line", "none")
    assert chat.write(Turn("two\nlines", "You")) == "two lines"  # a chat turn is one line; no labels in the corpus
    assert chat.read("ana: hi") == Turn("ana: hi")
    assert play.split(PLAY)[:2] == [
        Turn("Is the ship in yet?", "MARLOW"),
        Turn("Not yet, sir. The wind is against her.", "TESS"),
    ]
    assert len(TurnFormat.measure(CHAT).split(CHAT)) == 28 and len(TurnFormat.measure(VERSE).split(VERSE)) == 4
    log = TurnFormat("line", "prefix")
    assert log.write(Turn("hi", "ana")) == "ana: hi" and log.read("ana: hi") == Turn("hi", "ana")


def test_training_records_the_format_on_the_card_and_old_bundles_infer_it(tiny_model, tiny_model_path, tmp_path):
    assert tiny_model.card.turns["boundary"] == "paragraph"  # the bundled verse corpus: stanzas
    assert TurnFormat.of(tiny_model) == TurnFormat(**tiny_model.card.turns)
    # a bundle from before turns were measured: its card has no "turns"; the model itself says blank lines are common
    old = tmp_path / "old"
    shutil.copytree(tiny_model_path, old)
    card = json.loads((old / "card.json").read_text())
    del card["turns"]
    (old / "card.json").write_text(json.dumps(card))
    from core import load

    assert TurnFormat.of(load(old)) == TurnFormat("paragraph", "none", 80)


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    """An n-gram-only model of the bundled chat corpus (seconds to count)."""
    from testdata import CHAT as CHAT_PATH

    from core import load, read_text

    path = build_instant(read_text(CHAT_PATH), tmp_path_factory.mktemp("chat") / "chat", corpus_name="chat").path
    return load(path)


def test_an_old_chat_bundle_infers_a_line_a_turn(chat_model):
    assert TurnFormat.infer(chat_model) == TurnFormat("line", "none", 40)
    assert chat_model.card.turns["boundary"] == "line"


def test_a_chat_turn_ends_at_the_end_of_its_line_and_streams_word_by_word(chat_model):
    conversation = Conversation(chat_model, [Turn("anyone baking this weekend?"), Turn("i might try a sourdough")])
    for seed in range(5):
        stream = conversation.stream(seed=seed)
        pieces = list(stream)
        turn = stream.turn
        assert turn.text and "\n" not in turn.text and "".join(pieces) == turn.text
        assert len(pieces) == len(chat_model.tokenizer.split(turn.text))  # one piece a token, as it is chosen
        assert len(pieces) <= conversation.shape.turn_tokens


def test_a_verse_turn_is_a_stanza(tiny_model):
    conversation = Conversation(tiny_model, [Turn("The harbour at Wenlow keeps its boats,\nand the tide comes in.")])
    ended = 0
    for seed in range(6):
        raw = tiny_model.generate(conversation.prompt(), conversation.generation_config(seed=seed, max_new_tokens=150))[
            0
        ]
        turn = conversation.reply(seed=seed, max_new_tokens=150)
        assert turn.text == raw.strip() and "\n\n" not in turn.text  # the turn: up to the blank line, without it
        ended += raw.endswith("\n\n")
    assert ended  # some stanzas end at a blank line before the length limit


def test_paragraph_stops_after_a_blank_line(tiny_model):
    texts = tiny_model.generate(
        "The tide", max_new_tokens=200, do_sample=True, seed=2, num_return_sequences=4, stop_at="paragraph"
    )
    for text in texts:
        assert "\n\n" not in text[:-2]


def test_the_next_turn_distribution_depends_on_the_previous_turns(tiny_model):
    about_mara = Conversation(tiny_model, [Turn("Dear Mara, the lamp at Carrick Point is out.")])
    about_boats = Conversation(tiny_model, [Turn("Ansel mended the nets on the quay all morning.")])
    rows = [tiny_model.tokenizer.encode(c.prompt()) for c in (about_mara, about_boats)]
    mara, boats = np.exp(tiny_model.next_log_probs(rows))
    assert np.abs(mara - boats).sum() > 0.01  # total variation: the first word of the next turn depends on the talk
    # and a whole next turn is likelier after its own conversation than from nothing
    reply = Turn("Dear Mara, the lamp is out again.")
    with_context = about_mara.turn_log_probs(reply).sum()
    alone = about_mara.turn_log_probs(reply, context=False).sum()
    assert with_context != pytest.approx(alone) and with_context > alone


def test_the_model_names_the_next_speaker_where_the_corpus_does(tmp_path):
    from core import load

    rng = random.Random(0)
    lines = [
        "Is the ship in yet?",
        "Not yet, sir. The wind is against her.",
        "Then we wait, as we always wait.",
        "Fetch me a chair, and a lamp.",
        "There is only the one, and the cat has it.",
        "The tide will turn before the bell.",
    ]
    play = "".join(f"{rng.choice(['MARLOW', 'TESS', 'OLD PIKE'])}:\n{rng.choice(lines)}\n\n" for _ in range(400))
    model = load(build_instant(play, tmp_path / "play").path)
    conversation = Conversation(model, [Turn("Is the ship in yet?", "TESS")])
    assert conversation.shape.speakers == "line" and conversation.prompt("MARLOW").endswith("\n\nMARLOW:\n")
    turns = [conversation.reply(seed=seed) for seed in range(4)]
    assert all(t.speaker in {"MARLOW", "TESS", "OLD PIKE"} and t.text and ":" not in t.text for t in turns)
    asked = conversation.reply(seed=1, speaker="TESS")
    assert asked.speaker == "TESS" and asked.text and ":" not in asked.text


def test_a_turn_decoded_by_the_caller_in_a_batch_reads_back_as_the_streamed_one(tmp_path, chat_model):
    """The bot decodes many conversations' turns together (generate_batch) and reads each back with turn_from."""
    from core import load

    play = "".join(f"{name}:\nThe wind is against her, {n}.\n\n" for n in range(150) for name in ("MARLOW", "TESS"))
    labelled = Conversation(load(build_instant(play, tmp_path / "play").path), [Turn("Is the ship in yet?", "TESS")])
    chat = Conversation(chat_model, [Turn("anyone baking this weekend?"), Turn("i might try a sourdough")])
    for conversation in (chat, labelled):
        for seed in range(3):
            prompt, config = conversation.request(seed=seed)
            assert config.stop_at == conversation.shape.boundary and prompt == conversation.prompt()
            (decoded,) = conversation.model.generate_batch([prompt], config)[0]
            assert conversation.turn_from(decoded) == conversation.reply(seed=seed)
    read = labelled.turn_from("MARLOW:\nThen we wait.\n\n")
    assert read == Turn("Then we wait.", "MARLOW")  # the label the model wrote is the turn's speaker
    assert labelled.turn_from("Then we wait.\n\n", speaker="TESS") == Turn("Then we wait.", "TESS")
    assert chat.turn_from("\n") == Turn("") and chat.retries >= 1  # an empty turn: the caller draws again


def test_chat_command_answers_each_line(monkeypatch, capsys, chat_model):
    monkeypatch.setattr("sys.stdin", io.StringIO("anyone baking this weekend?\n\nwhat are you making?\n"))
    assert main(["chat", "-m", str(chat_model.path), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    replies = out.split("\n")[:-1]
    assert len(replies) == 2 and all(replies)  # one line a turn, for the two turns typed (the blank one skipped)
    conversation = Conversation(chat_model, [Turn("anyone baking this weekend?")])
    assert replies[0] == conversation.reply(seed=3).text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--temperature", "0"], "temperature must be above 0"),
        (["--stop-at", "word"], "stop_at must be"),
        (["--num-beams", "3"], "one sequence"),
    ],
)
def test_chat_command_bad_values_exit_2_with_one_line(monkeypatch, capsys, chat_model, argv, message):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    assert main(["chat", "-m", str(chat_model.path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
