"""Does the conversation so far help? Perplexity of each held-out turn given the turns before it, against the
same turn given nothing before it (from the start of a text) and given only a turn boundary before it.

    python bench/conversation.py                       # the bundled chat corpus and tiny-shakespeare (a play)
    python bench/conversation.py chat                  # one of them
    python bench/conversation.py --max-minutes 3 --turns 200   # the defaults

A text is cut into its turns as core.TurnFormat measures it (chat: one message a line; the play: one
speech between blank lines, its speaker's name above it): the first 80% of the turns train a model with
`continuo train`'s defaults and a short time budget, the next 10% validate it, and each of the last 10%
(at most --turns of them) is scored as the core's Conversation writes it, its boundary included, after
the previous held-out turns (as many as the cache reads), after nothing, and after a boundary alone.
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, REPO, machine, measured_on, write_results  # noqa: E402

TEXTS = {
    "chat": REPO / "corpora" / "chat" / "corpus.txt",  # original chat messages, one a line (CC0)
    "tinyshakespeare": DATA / "tinyshakespeare" / "input.txt",  # Shakespeare's plays (public domain; Karpathy's file)
}
SOURCES = {"chat": "corpora/chat/corpus.txt", "tinyshakespeare": "../shared/data/tinyshakespeare/input.txt"}
CONDITIONS = ("previous turns", "a boundary alone", "nothing")


def turn_log_probs_by_part(model, before: list[int], turn: list[int]) -> dict[str, np.ndarray]:
    """log P of each of `turn`'s tokens after `before`, from each part of the model (only the turn's positions
    go through the neural model)."""
    from core.data import context_windows
    from core.ngram import cache_target_probabilities

    ids = np.array(before + turn, np.int32)
    n = len(turn)
    parts = {}
    if model.model is not None:
        logits = model.logits(context_windows(ids, model.window)[-n:]).astype(np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        parts["neural"] = logits[np.arange(n), ids[-n:]] - log_z
    with np.errstate(divide="ignore"):
        if model.ngram is not None:
            parts["ngram"] = np.log(model.ngram.target_probabilities(ids))[-n:]
        parts["cache"] = np.log(cache_target_probabilities(ids, len(model.tokenizer), model.cache_shares))[-n:]
    return parts


def run(name: str, path: Path, max_minutes: float, max_turns: int, folder: Path) -> dict:
    from core import Conversation, TrainConfig, TurnFormat, load, train
    from core.generate import mix_log_probs

    text = path.read_text("utf-8")
    shape = TurnFormat.measure(text)
    turns = shape.split(text)
    a, b = int(len(turns) * 0.8), int(len(turns) * 0.9)
    join = lambda part: "".join(shape.write(t) + shape.separator for t in part)  # noqa: E731
    start = time.perf_counter()
    result = train(
        join(turns[:a]),
        folder / name,
        train_config=TrainConfig(max_minutes=max_minutes),
        corpus_name=name,
        valid_text=join(turns[a:b]),
    )
    train_s = time.perf_counter() - start
    model = load(result.path)
    assert TurnFormat.of(model) == replace_tokens(shape, model)  # the card holds what was measured here
    held = turns[b:][: max_turns + 1]
    sums = {c: {} for c in CONDITIONS}
    tokens = 0
    start = time.perf_counter()
    for i in range(1, len(held)):
        conversation = Conversation(model, held[:i], shape)
        turn = model.tokenizer.encode(shape.write(held[i]) + shape.separator)
        contexts = {
            "previous turns": model.tokenizer.encode(conversation.prompt()),
            "a boundary alone": model.tokenizer.encode(shape.separator),
            "nothing": [],
        }
        for condition, before in contexts.items():
            parts = turn_log_probs_by_part(model, before, turn)
            parts["served"] = mix_log_probs({k: (model.weights[k], v) for k, v in parts.items()})
            for part, log_p in parts.items():
                sums[condition][part] = sums[condition].get(part, 0.0) + float(log_p.sum())
        if i == 1:  # the core's own scoring agrees with this one
            served = conversation.turn_log_probs(held[i]).sum()
            assert math.isclose(served, parts_sum(model, contexts["previous turns"], turn), rel_tol=1e-6)
        tokens += len(turn)
    score_s = time.perf_counter() - start
    ppl = {c: {p: round(math.exp(-s / tokens), 2) for p, s in sums[c].items()} for c in CONDITIONS}
    return {
        "text": SOURCES[name],
        "turn_format": shape.to_dict(),
        "turns": {"train": a, "valid": b - a, "scored": len(held) - 1, "tokens_scored": tokens},
        "card": {
            "val_perplexity": result.card.val_perplexity,
            "serves": result.card.serves,
            "epochs": result.card.epochs,
            "stopped": result.card.stopped,
        },
        "perplexity": ppl,
        "ratio_previous_turns_to_nothing": round(ppl["previous turns"]["served"] / ppl["nothing"]["served"], 3),
        "ratio_previous_turns_to_boundary": round(
            ppl["previous turns"]["served"] / ppl["a boundary alone"]["served"], 3
        ),
        "train_s": round(train_s, 1),
        "score_s": round(score_s, 1),
    }


def replace_tokens(shape, model):
    """The measured shape as the card keeps it (the card measures the training part, whose long turns may differ)."""
    from dataclasses import replace

    return replace(shape, turn_tokens=model.card.turns["turn_tokens"])


def parts_sum(model, before: list[int], turn: list[int]) -> float:
    from core.generate import mix_log_probs

    parts = turn_log_probs_by_part(model, before, turn)
    return float(mix_log_probs({k: (model.weights[k], v) for k, v in parts.items()}).sum())


def table(results: dict, m: dict) -> str:
    lines = [
        "# Conversation: the next turn given the previous turns, against none",
        "",
        measured_on(m) + ".",
        "",
        "Perplexity per token of each held-out turn (its boundary included) after the previous held-out turns, after "
        "a turn boundary alone, and after nothing (the start of a text). Lower is better; the ratio below 1 is what "
        "the conversation adds.",
        "",
        "| text | turn | turns scored | served: previous turns | boundary alone | nothing | ratio to nothing "
        "| ratio to boundary | neural: previous / nothing | n-gram: previous / nothing | serves |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p = r["perplexity"]
        neural = (
            f"{p['previous turns']['neural']} / {p['nothing']['neural']}" if "neural" in p["previous turns"] else "-"
        )
        ngram = f"{p['previous turns']['ngram']} / {p['nothing']['ngram']}"
        shape = r["turn_format"]
        lines.append(
            f"| {name} | {shape['boundary']}, speakers {shape['speakers']} | {r['turns']['scored']} "
            f"({r['turns']['tokens_scored']:,} tokens) | {p['previous turns']['served']} | "
            f"{p['a boundary alone']['served']} | {p['nothing']['served']} | "
            f"**{r['ratio_previous_turns_to_nothing']}** | {r['ratio_previous_turns_to_boundary']} | "
            f"{neural} | {ngram} | {r['card']['serves']} "
            f"({r['card']['epochs']} epochs, {r['card']['stopped']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("texts", nargs="*", metavar="TEXT", help=f"some of: {', '.join(TEXTS)} (default: all)")
    parser.add_argument("--max-minutes", type=float, default=3.0, help="each model's training budget")
    parser.add_argument("--turns", type=int, default=200, help="held-out turns scored at most, per text")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (for tiny-shakespeare)")
    args = parser.parse_args()
    unknown = [t for t in args.texts if t not in TEXTS]
    if unknown:
        parser.error(f"unknown text {unknown[0]!r}; pick from {', '.join(TEXTS)}")
    texts = {**TEXTS, "tinyshakespeare": args.data / "tinyshakespeare" / "input.txt"}
    m, results = machine(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.texts or list(TEXTS):
            results[name] = run(name, texts[name], args.max_minutes, args.turns, Path(tmp))
            print(name, results[name], flush=True)
    write_results("conversation", {"machine": m, "max_minutes": args.max_minutes, **results}, table(results, m))


if __name__ == "__main__":
    main()
