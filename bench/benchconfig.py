"""The throwaway daemon configuration every benchmark starts from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from config.loader import EventLoopName


def add_event_loop_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event-loop", choices=get_args(EventLoopName), default="uvloop",
                        help="the daemon's event loop, as [ingest] event_loop (default uvloop, as in production)")


def write_config(tmp: Path, extra: str = "", *, acknowledge: bool = False) -> Path:
    """Store in `tmp` at synchronous=FULL (as in production), HTTP and agent API on ephemeral
    ports; acknowledgements off unless asked (they add outbound traffic to the measurement)."""
    path = tmp / "bench.toml"
    path.write_text(f"""
[store]
path = "{tmp / 'store.sqlite3'}"
attachments_dir = "{tmp / 'att'}"
synchronous = "FULL"

[claims]
acknowledge_new_tickets = {str(acknowledge).lower()}

[http]
host = "127.0.0.1"
port = 0

[agent_api]
host = "127.0.0.1"
port = 0
{extra}""", encoding="utf-8")
    return path
