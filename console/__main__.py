"""`python -m console --url ws://127.0.0.1:8765 --token pvd_...`"""

from __future__ import annotations

import argparse
import sys

from console.app import run_console
from console.render import Prefs


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="the agent API websocket")
    parser.add_argument("--token", required=True, help="the agent's token (python run.py agent add ...)")
    parser.add_argument("--gregorian", action="store_true", help="Gregorian dates instead of Jalali")
    parser.add_argument("--latin-digits", action="store_true", help="Latin digits instead of Persian")
    parser.add_argument("--no-bidi", action="store_true",
                        help="leave right-to-left reordering to the terminal (for terminals that do bidi)")


def prefs_from(args: argparse.Namespace) -> Prefs:
    return Prefs(calendar="gregorian" if args.gregorian else "jalali",
                 digits="latin" if args.latin_digits else "persian", bidi=not args.no_bidi)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console")
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    return run_console(args.url, args.token, prefs_from(args))


if __name__ == "__main__":
    sys.exit(main())
