"""The `continuo` command: train, generate, eval, corpora, models, and the front-ends' sub-commands."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from collections.abc import Container
from dataclasses import asdict, fields
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import Cancelled, ContinuoError

EXIT_USER_ERROR = 2  # a mistake the user can fix; the message says how


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, its mistakes told in one line that names the help to read (exit 2, as every user
    mistake); the parsers of sub-commands are of this class too."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.run(args) or 0
    except ContinuoError as e:
        print(f"continuo: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:  # a disk that filled up or went read-only under a command: its folder and why, no traceback
        where = e.filename or "a file"
        print(
            f"continuo: error: {where}: {e.strerror or e}; check that folder (free space, permissions) and try again",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("continuo: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="continuo", description="Learn how a body of text sounds and continue any sentence in that voice."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_train(commands)
    _add_generate(commands)
    _add_chat(commands)
    _add_eval(commands)
    p = commands.add_parser("corpora", help="list the bundled corpora", description="List the bundled corpora.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_corpora)
    p = commands.add_parser(
        "models",
        help="list trained models with their metrics",
        description="List trained model bundles with their metrics.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_models)
    for ep in entry_points(group="continuo.commands"):  # tui, bot: registered by their own packages
        try:
            ep.load()(commands)
        except ImportError as e:  # say so when the command is used, not on every other command
            reason = f"the {ep.name!r} command is unavailable ({e}); reinstall with `pip install -e .`"
            commands.add_parser(ep.name, help="(unavailable)").set_defaults(run=_unavailable(reason))
    return parser


def _unavailable(reason: str):
    def run(args):
        raise ContinuoError(reason)

    return run


# --- train
def _add_train(commands) -> None:
    from .model import ModelConfig
    from .training import TrainConfig

    p = commands.add_parser(
        "train",
        help="train a model on a text file or a bundled corpus",
        description="Train a model on a text file or a bundled corpus and save it as a "
        "named bundle in the data folder.",
    )
    p.add_argument("source", help="a bundled corpus name (see `continuo corpora`) or a UTF-8 text file")
    p.add_argument("--name", help="the model's name (default: the corpus or file name)")
    p.add_argument("--out", type=Path, help="save the bundle at this path instead of the data folder")
    p.add_argument("--valid", type=Path, help="held-out text for validation (default: the last 10%% of the text)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint of this run exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dataclass_options(p, ModelConfig, skip={"vocab_size"}, unset="chosen for the corpus size")
    _add_dataclass_options(p, TrainConfig, unset="chosen for the corpus size")
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from .backend import use_a_replica_per_core
    from .data import read_text, resolve_text_source
    from .locks import training_guard
    from .model import ModelConfig
    from .settings import get_settings
    from .store import ModelStore, check_name
    from .training import TrainConfig, train

    use_a_replica_per_core()  # before TensorFlow starts; this command only trains
    corpus_name, text = resolve_text_source(args.source)
    name = args.name or Path(corpus_name).stem
    out = args.out or ModelStore().path(check_name(name))
    model_config = ModelConfig(**_dataclass_values(args, ModelConfig, skip={"vocab_size"})).validate()
    train_config = TrainConfig(**_dataclass_values(args, TrainConfig)).validate()
    valid_text = read_text(args.valid) if args.valid else None
    checkpoints = get_settings().checkpoints_dir / Path(out).name
    terminated = threading.Event()  # SIGTERM (systemd, Docker, Kubernetes): stop at the next batch, keep the checkpoint
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: terminated.set())
    try:
        # checked before any work: the folders are writable with room, and no other run trains this name
        with (
            training_guard(out, checkpoints, model_config, train_config),
            _ProgressBar(enabled=not args.quiet) as bar,
        ):
            if args.no_resume:
                shutil.rmtree(checkpoints, ignore_errors=True)
            result = train(
                text,
                out,
                model_config,
                train_config,
                name=name,
                corpus_name=corpus_name,
                valid_text=valid_text,
                on_progress=bar.update,
                checkpoint_dir=checkpoints,
                should_stop=terminated.is_set,
            )
    except Cancelled as e:
        if not terminated.is_set():
            raise
        kept = "" if "nothing was saved" in str(e) else "; its last finished epoch is kept: run it again to resume"
        print(f"continuo: stopped by SIGTERM ({e}){kept}", file=sys.stderr)
        return 0  # a clean stop, as a service manager expects: nothing is lost and a rerun resumes
    finally:
        signal.signal(signal.SIGTERM, previous)
    card = result.card
    print(
        f"saved {result.path} — validation perplexity {card.val_perplexity:.2f} after {card.epochs} epochs "
        f"({card.stopped}, {card.train_seconds:.0f} s)"
    )
    return 0


class _ProgressBar:
    """A rich progress bar fed by core.Progress reports."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress: Any = None  # a rich Progress once the first report comes (rich loads only then)
        self.task: Any = None

    def __enter__(self):
        return self

    def _start(self):
        if self.progress is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=1.0, epoch="-", stats="")

    def update(self, p) -> None:
        if p.phase == "start":  # what training found first (a checkpoint it resumes, or an unreadable one)
            print(f"continuo: {p.message}", file=sys.stderr, flush=True)
        if not self.enabled:
            return
        self._start()
        stats = f"loss {p.loss:.3f}" if p.loss is not None else ""
        if p.val_perplexity is not None:
            stats += f"  val ppl {p.val_perplexity:.1f}"
        self.progress.update(self.task, completed=p.fraction, epoch=f"{p.epoch}/{p.epochs}", stats=stats)
        if p.phase == "epoch":
            self.progress.console.log(p.message)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)


# --- generate
def _add_generate(commands) -> None:
    from .generate import GenerationConfig

    p = commands.add_parser(
        "generate", help="continue a seed sentence", description="Continue a seed sentence with a trained model."
    )
    p.add_argument("prompt", metavar="SEED", help="the words to continue")
    p.add_argument("--model", "-m", help="model name or bundle path (default: the bundled default model)")
    p.add_argument("--stream", action="store_true", help="print words as they are produced")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_dataclass_options(p, GenerationConfig, defaults=GenerationConfig.readable())
    p.set_defaults(run=run_generate)


def run_generate(args) -> int:
    from .generate import GenerationConfig, LanguageModel
    from .store import ModelStore

    config = GenerationConfig.readable(**_dataclass_values(args, GenerationConfig))
    model = LanguageModel.load(ModelStore().resolve(args.model))
    if args.stream and not args.json:
        print(args.prompt, end="", flush=True)
        for piece in model.stream(args.prompt, config):
            print(piece, end="", flush=True)
        print()
        return 0
    texts = model.generate(args.prompt, config)
    if args.json:
        print(
            json.dumps(
                {"model": model.card.name, "seed": args.prompt, "continuations": texts, "options": config.to_dict()},
                ensure_ascii=False,
            )
        )
    else:
        for i, text in enumerate(texts):
            print(("\n---\n" if i else "") + args.prompt + text)
    return 0


# --- chat
def _add_chat(commands) -> None:
    from .generate import GenerationConfig

    p = commands.add_parser(
        "chat",
        help="talk with a model: each line you type is a turn, it answers with the next",
        description="Talk with a model: each line read from standard input is a turn, and the model answers with "
        "the next turn in its voice, which ends where its corpus ends a turn (a line break, or a blank line). "
        "Where the corpus names its speakers, 'NAME: words' is a turn by NAME.",
    )
    p.add_argument("--model", "-m", help="model name or bundle path (default: the bundled default model)")
    _add_dataclass_options(p, GenerationConfig, defaults=GenerationConfig.readable())
    learned = {"max_new_tokens": "a long turn of the corpus", "stop_at": "the corpus's turn boundary"}
    for action in p._actions:  # these two default to what the model's corpus does
        if action.dest in learned and action.help:
            action.help = action.help.rsplit(" (default:", 1)[0] + f" (default: {learned[action.dest]})"
    p.set_defaults(run=run_chat)


def run_chat(args) -> int:
    from .conversation import Conversation
    from .generate import GenerationConfig, LanguageModel
    from .store import ModelStore

    options = _dataclass_values(args, GenerationConfig)
    GenerationConfig.readable(**options)  # a bad value is one line before the model loads
    conversation = Conversation(LanguageModel.load(ModelStore().resolve(args.model)))
    config, shape = conversation.generation_config(**options), conversation.shape
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        conversation.turns.append(shape.read(line))
        stream = conversation.stream(config)
        first = next(stream, "")  # the speaker, where the model names one, is known by now
        print(shape.opening(stream.speaker) + first, end="", flush=True)
        for piece in stream:
            print(piece, end="", flush=True)
        print(shape.separator, end="", flush=True)
        conversation.turns.append(stream.turn)


# --- eval
def _add_eval(commands) -> None:
    p = commands.add_parser(
        "eval",
        help="perplexity and bits per character of a model on a text file",
        description="Perplexity per token and bits per character of a model on a text file (lower is better). "
        "Bits per character charge every character, an unknown word by P(unknown) x P(its spelling); "
        "perplexity scores an unknown word as the unknown token only.",
    )
    p.add_argument("file", type=Path, help="a UTF-8 text file")
    p.add_argument("--model", "-m", help="model name or bundle path (default: the bundled default model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_eval)


def run_eval(args) -> int:
    from .data import read_text
    from .generate import LanguageModel
    from .store import ModelStore

    text = read_text(args.file)
    model = LanguageModel.load(ModelStore().resolve(args.model))
    result = model.perplexity(text)
    if args.json:
        print(json.dumps({"model": model.card.name, "file": str(args.file), **asdict(result)}))
    else:
        print(
            f"{args.file}: perplexity {result.perplexity:.2f} over {result.tokens:,} tokens "
            f"({result.unknown:,} unknown), {result.bits_per_character:.3f} bits per character over "
            f"{result.characters:,} characters with {model.card.name}"
        )
        if result.spelling == "vocabulary" and result.unknown:
            print(
                "  (this model was saved before spelling models: its unknown words were spelled by one counted "
                "from its vocabulary; retrain it for its own)"
            )
    return 0


# --- corpora, models
def run_corpora(args) -> int:
    from .data import bundled_corpora

    corpora = [(c, len(c.text().split())) for c in bundled_corpora()]
    if args.json:
        print(
            json.dumps(
                [{"name": c.name, "path": str(c.path), "words": words, "summary": c.summary} for c, words in corpora]
            )
        )
        return 0
    for c, words in corpora:
        print(f"{c.name:<12} {words:>8,} words  {c.summary}")
    return 0


def run_models(args) -> int:
    from .store import ModelStore

    models = ModelStore().list()
    if args.json:
        print(
            json.dumps(
                [
                    {"name": m.name, "path": str(m.path), "card": asdict(m.card) if m.card else None, "error": m.error}
                    for m in models
                ],
                ensure_ascii=False,
            )
        )
        return 0
    if not models:
        print("no models yet: train one with `continuo train CORPUS`")
    for m in models:
        if m.card is None:
            print(f"{m.name:<20} unreadable: {m.error}")
            continue
        c = m.card
        ppl = f"{c.val_perplexity:8.2f}" if c.val_perplexity is not None else "       -"
        print(
            f"{m.name:<20} val ppl {ppl}  {c.tokens:>9,} tokens  vocab {c.vocab_size:>6,}  "
            f"{c.corpus:<16} {c.created[:10]}  {c.serves}"
        )
    return 0


# --- dataclass fields as options
def _add_dataclass_options(parser, cls, skip: Container[str] = frozenset(), defaults=None, unset="none") -> None:
    """One option per field of `cls`, described by its comment, its default taken from `defaults` (an instance)
    when given; `unset` says what a default of None means."""
    group = parser.add_argument_group(cls.__name__)
    described = _field_comments(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if defaults is None else getattr(defaults, f.name)
        shown = unset if default is None else default
        help_text = f"{described.get(f.name, '')} (default: {shown})".strip().replace("%", "%%")
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0].split("|")[0].strip())
        # an option not given leaves no attribute, so that "none" given for a field that may be None stays None
        if f.type in ("bool", bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            parse = _value_parser(kind or str, none_allowed="None" in str(f.type))
            group.add_argument(flag, type=parse, default=argparse.SUPPRESS, metavar=f.name.upper(), help=help_text)


def _field_comments(cls) -> dict[str, str]:
    """Each field's trailing comment in the dataclass's source: the one description of the setting."""
    import inspect
    import re

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m[1]: m[2].strip() for m in re.finditer(r"^\s+(\w+):[^#\n]*#\s*(.+)$", source, re.M)}


def _value_parser(kind, none_allowed: bool):
    """Parses an option's value as `kind`, or as None from "none" where the setting may be None."""

    def parse(value: str):
        if none_allowed and value.lower() == "none":
            return None
        try:
            return kind(value)
        except ValueError:
            expected = {int: "a whole number", float: "a number"}.get(kind, "text") + (' or "none"' * none_allowed)
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None

    parse.__name__ = kind.__name__
    return parse


def _dataclass_values(args, cls, skip: Container[str] = frozenset()) -> dict:
    """The fields of `cls` given as options (a "none" given stays None)."""
    given = vars(args)
    return {f.name: given[f.name] for f in fields(cls) if f.name not in skip and f.name in given}


if __name__ == "__main__":
    sys.exit(main())
