"""`python -m bot`: the same as `continuo bot`."""

import sys

from core import CommandParser, ContinuoError

from .cli import DESCRIPTION, EXIT_USER_ERROR, add_arguments


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m bot", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ContinuoError as e:
        print(f"python -m bot: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
