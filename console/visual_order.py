"""One line of console text in the order a terminal without bidi support prints it: the Unicode
Bidirectional Algorithm (UAX #9) resolving each character's embedding level, then mirroring
(rule L4) and reordering (L1, L2) by those levels. Pure.

python-bidi's `get_display` (the Rust unicode-bidi crate) reorders but does not mirror, and
gives no levels to mirror by: a Persian "(جزئی)" came out as ")جزئی(". Mirroring needs each
character's level, and guessing it (say, "a bracket beside Persian letters is right to left")
disagrees with the reordering whenever the bracket-pair rule (N0) decides otherwise, so the
levels are resolved here and the line is reordered by them; python-bidi's display is what the
tests hold the order to. The text is neutralised (`render.neutralise` shows embeddings,
overrides and isolates as inert pictures; the console's own labels have none), so a paragraph is
one isolating run sequence at the base level and the explicit rules reduce to X9: boundary
neutrals (ZWNJ, ZWJ) are set aside and take the level of the character before them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# BidiMirroring.txt's pairs (python-bidi ships them, from the Unicode data it was built with):
# Python's unicodedata says whether a character is mirrored but not what its mirror is.
from bidi.mirror import MIRRORED

_REMOVED = frozenset({"BN", "LRE", "RLE", "LRO", "RLO", "PDF"})  # X9
_NEUTRAL = frozenset({"B", "S", "WS", "ON", "LRI", "RLI", "FSI", "PDI"})
_TRAILING = frozenset({"WS", "LRI", "RLI", "FSI", "PDI"}) | _REMOVED  # what L1 resets
_PARAGRAPH_END = re.compile(r"(?<=[\n\r\x1c-\x1e\x85\u2029])")
_MAX_BRACKET_DEPTH = 63  # BD16


def _canonical(char: str) -> str:
    # BD16 matches a bracket or its canonical equivalent: U+2329 is U+3008.
    return unicodedata.normalize("NFC", char)


# Paired brackets (BidiBrackets.txt) are by definition the mirrored pairs an opening punctuation
# (Ps) and a closing one (Pe) make; « » are mirrored but not paired.
_CLOSER_OF = {_canonical(a): _canonical(b) for a, b in MIRRORED.items()
              if unicodedata.category(a) == "Ps" and unicodedata.category(b) == "Pe"}
_CLOSERS = frozenset(_CLOSER_OF.values())


def paragraph_level(text: str) -> int:
    """P2, P3: 1 (right to left) if the first strong character is Persian, Arabic or Hebrew."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return 0
        if kind in ("R", "AL"):
            return 1
    return 0


def _strong(kind: str) -> str | None:
    """The direction a resolved type counts as in N0 and N1: numbers count as right to left."""
    if kind == "L":
        return "L"
    if kind in ("R", "AL", "EN", "AN"):
        return "R"
    return None


def _weak_types(kinds: list[str], sos: str) -> None:
    """W1–W7 in place."""
    previous, last_strong = sos, sos
    for i, kind in enumerate(kinds):
        if kind == "NSM":  # W1
            kind = kinds[i] = previous
        if kind in ("L", "R", "AL"):
            last_strong = kind
        elif kind == "EN" and last_strong == "AL":  # W2
            kinds[i] = "AN"
        previous = kind
    for i, kind in enumerate(kinds):
        if kind == "AL":  # W3
            kinds[i] = "R"
    for i in range(1, len(kinds) - 1):  # W4
        before, after = kinds[i - 1], kinds[i + 1]
        if before == after and ((kinds[i] == "ES" and before == "EN") or (kinds[i] == "CS" and before in ("EN", "AN"))):
            kinds[i] = before
    i = 0
    while i < len(kinds):  # W5: a run of terminators beside a European number is part of it
        if kinds[i] != "ET":
            i += 1
            continue
        end = i
        while end < len(kinds) and kinds[end] == "ET":
            end += 1
        if (i > 0 and kinds[i - 1] == "EN") or (end < len(kinds) and kinds[end] == "EN"):
            kinds[i:end] = ["EN"] * (end - i)
        i = end
    last_strong = sos
    for i, kind in enumerate(kinds):
        if kind in ("ES", "ET", "CS"):  # W6
            kinds[i] = "ON"
        elif kind in ("L", "R"):
            last_strong = kind
        elif kind == "EN" and last_strong == "L":  # W7
            kinds[i] = "L"


def _bracket_pairs(chars: Sequence[str], kinds: list[str]) -> list[tuple[int, int]]:
    """BD16: the positions of matching opening and closing brackets, by opening position."""
    stack: list[tuple[str, int]] = []
    pairs = []
    for i, char in enumerate(chars):
        if kinds[i] != "ON":
            continue
        key = _canonical(char)
        if key in _CLOSER_OF:
            if len(stack) == _MAX_BRACKET_DEPTH:
                break
            stack.append((_CLOSER_OF[key], i))
        elif key in _CLOSERS:
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == key:
                    pairs.append((stack[depth][1], i))
                    del stack[depth:]
                    break
    return sorted(pairs)


def _bracket_types(chars: Sequence[str], kinds: list[str], original: Sequence[str], embedding: str) -> None:
    """N0 in place: a bracket pair takes the embedding direction if it encloses text of that
    direction, else the other one if it encloses that and the text before it runs that way too."""
    for opening, closing in _bracket_pairs(chars, kinds):
        inside = {_strong(kind) for kind in kinds[opening + 1:closing]}
        if embedding in inside:
            direction = embedding
        elif inside - {None}:
            # the other direction only if the text before the pair runs that way as well
            direction = next((s for s in map(_strong, reversed(kinds[:opening])) if s), embedding)
        else:
            continue
        for position in (opening, closing):
            kinds[position] = direction
            follower = position + 1  # marks on a bracket follow it (W1 gave them its old type)
            while follower < len(kinds) and original[follower] == "NSM":
                kinds[follower] = direction
                follower += 1


def _neutral_types(kinds: list[str], embedding: str) -> None:
    """N1, N2 in place: neutrals between text of one direction take it, others the embedding's."""
    i = 0
    while i < len(kinds):
        if kinds[i] not in _NEUTRAL:
            i += 1
            continue
        end = i
        while end < len(kinds) and kinds[end] in _NEUTRAL:
            end += 1
        before = _strong(kinds[i - 1]) if i > 0 else embedding
        after = _strong(kinds[end]) if end < len(kinds) else embedding
        kinds[i:end] = [before if before == after else embedding] * (end - i)
        i = end


def _implicit_level(kind: str, base: int) -> int:
    """I1, I2 (every type is L, R, EN or AN by now)."""
    if base == 0:
        return {"L": 0, "R": 1}.get(kind, 2)
    return 1 if kind == "R" else 2


def levels(paragraph: str, base: int) -> list[int]:
    """The resolved embedding level of each character of one paragraph (a paragraph separator
    only at its end) at base level `base` (0 or 1), after L1: odd is right to left."""
    original = [unicodedata.bidirectional(char) or "L" for char in paragraph]
    kept = [i for i, kind in enumerate(original) if kind not in _REMOVED]
    embedding = "R" if base else "L"
    kinds = [original[i] for i in kept]
    chars = [paragraph[i] for i in kept]
    _weak_types(kinds, embedding)
    _bracket_types(chars, kinds, [original[i] for i in kept], embedding)
    _neutral_types(kinds, embedding)
    result = [base] * len(paragraph)
    for position, kind in zip(kept, kinds, strict=True):
        result[position] = _implicit_level(kind, base)
    for i, kind in enumerate(original):  # X9's removed characters: the level before them
        if kind in _REMOVED and i > 0:
            result[i] = result[i - 1]
    # L1: separators, and the spaces before them or at the end of the line, at the base level
    reset = True
    for i in range(len(paragraph) - 1, -1, -1):
        if original[i] in ("S", "B"):
            reset = True
        elif original[i] not in _TRAILING:
            reset = False
            continue
        if reset:
            result[i] = base
    return result


def mirror(text: str, text_levels: Sequence[int]) -> str:
    """L4: each mirrored character at a right-to-left (odd) level as its mirror image."""
    return "".join(MIRRORED.get(char, char) if level % 2 else char
                   for char, level in zip(text, text_levels, strict=True))


def reorder(text: str, text_levels: Sequence[int]) -> str:
    """L2: from the highest level down to the lowest odd one, every run at that level or higher
    reversed."""
    if not text:
        return text
    cells = list(zip(text_levels, text, strict=True))
    for level in range(max(text_levels), (min(text_levels) | 1) - 1, -1):
        i = 0
        while i < len(cells):
            if cells[i][0] < level:
                i += 1
                continue
            end = i
            while end < len(cells) and cells[end][0] >= level:
                end += 1
            cells[i:end] = cells[i:end][::-1]
            i = end
    return "".join(char for _, char in cells)


def visual(line: str, base: int) -> str:
    """`line` as a terminal without bidi prints it, each paragraph at base level `base`."""
    shown = []
    for paragraph in _PARAGRAPH_END.split(line):
        paragraph_levels = levels(paragraph, base)
        shown.append(reorder(mirror(paragraph, paragraph_levels), paragraph_levels))
    return "".join(shown)
