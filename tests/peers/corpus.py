"""The shared corpus of real sample payloads, for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def corpus_updates(directory: str = "/work/shared/corpus/telegram-updates") -> dict[str, dict[str, Any]]:
    """The real sample Telegram updates, by file name stem."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(directory).glob("*.json"))}
