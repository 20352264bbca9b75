"""`python -m console --url ws://127.0.0.1:8765 --token pvd_...`"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.loader import ConfigError, console_settings
from console.app import run_console
from console.render import LANGUAGES, Language, Prefs


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="the agent API websocket")
    parser.add_argument("--token", required=True, help="the agent's token (python run.py agent add ...)")
    parser.add_argument("--gregorian", action="store_true", help="Gregorian dates instead of Jalali")
    parser.add_argument("--latin-digits", action="store_true", help="Latin digits instead of Persian")
    parser.add_argument("--no-bidi", action="store_true",
                        help="leave right-to-left reordering to the terminal (for terminals that do bidi)")
    parser.add_argument("--lang", choices=LANGUAGES, default=None,
                        help="the console's own labels in Persian or English (default: [console] language)")


def prefs_from(args: argparse.Namespace, language: Language = "fa") -> Prefs:
    """`language`: `--lang`, else the configuration's `[console] language` (the caller's to read)."""
    return Prefs(calendar="gregorian" if args.gregorian else "jalali",
                 digits="latin" if args.latin_digits else "persian", bidi=not args.no_bidi, language=language)


def configured_prefs(args: argparse.Namespace, config: Path | None = None) -> Prefs:
    """`prefs_from` in the language `--lang` says, else `config`'s `[console] language` (the
    shipped file's without one). Raises ConfigError."""
    return prefs_from(args, args.lang or console_settings(config).language)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console")
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    try:
        prefs = configured_prefs(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return run_console(args.url, args.token, prefs)


if __name__ == "__main__":
    sys.exit(main())
