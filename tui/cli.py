"""`continuo tui [MODEL]`: the sub-command that opens the terminal UI."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "tui"
HELP = "open the terminal UI: live completion, training and models"
DESCRIPTION = (
    "Open Continuo's terminal UI on the default model, or on MODEL: a model name, a model folder, "
    "or a bundled corpus or text file to train a model on."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="a model name or folder; or a bundled corpus name or text file to train on",
    )


def register(commands) -> None:
    """Add `tui` to the `continuo` command's sub-parsers."""
    parser = commands.add_parser(NAME, help=HELP, description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(run=run)


def resolve_target(target: str | None) -> tuple[str | Path | None, str | None]:
    """(model to open, text to offer for training) for the MODEL argument."""
    from core import BundleError, ModelStore, find_corpus

    if target is None:
        return None, None
    try:
        return ModelStore().resolve(target), None
    except BundleError:
        if find_corpus(target) is not None or Path(target).expanduser().is_file():
            return None, target
        raise BundleError(
            f"{target!r} is not a model, a bundled corpus or a text file; `continuo models` lists the models"
        ) from None


def run(args: argparse.Namespace) -> int:
    from core import get_settings

    from .terminal import native_stderr_to

    model, train_source = resolve_target(args.model)
    with native_stderr_to(get_settings().home / "logs" / "tui.log"):
        from .app import ContinuoApp

        ContinuoApp(model, train_source=train_source).run()
    return 0
