"""`python -m tui [MODEL]`: the same as `continuo tui [MODEL]`."""

import sys

from core import CommandParser, ContinuoError

from .cli import DESCRIPTION, add_arguments, run

EXIT_USER_ERROR = 2  # as `continuo` exits on a mistake the user can fix


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m tui", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ContinuoError as e:
        print(f"continuo: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
