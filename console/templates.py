"""Reply templates: fill the placeholders an agent's canned text may carry. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS = ("ref", "customer", "agent", "subject")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace {ref}, {customer}, {agent}, {subject}; any other brace (a typo, JSON, a price in
    braces) is left as written rather than failing the reply."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1]) or m[0], text)
