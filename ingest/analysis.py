"""What the words of an inbound message say, worked out once and before its write: the claim
references it names, the facts routing reads (language, line of business, the folded opening),
its full-text search key, and whether its sender is a robot no one should answer.

Pure and CPU-bound (a 10 KB mail costs ~0.5 ms of Persian normalisation), so the ingest
processor runs it next to parsing: in the normaliser process, where it does not compete with
the store's writer for the daemon's interpreter lock.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from ingest.persian import looks_persian, normalize_for_matching, search_words
from ingest.records import InboundMessage
from router.claimref import find_claim_refs
from router.identity import is_unattended_address

# Routing reads the subject and the opening of the text: what a claim is about is said early,
# and a 1 MB mail must not cost a megabyte of normalisation for a routing decision.
ROUTING_SAMPLE_CHARS = 4000

_AUTO_WORDS = tuple(normalize_for_matching(w) for w in (
    "تصادف", "خودرو", "ماشین", "بدنه", "ثالث", "پلاک", "accident", "vehicle"))
_HEALTH_WORDS = tuple(normalize_for_matching(w) for w in (
    "بیمارستان", "درمان", "پزشک", "دارو", "hospital", "medical", "clinic"))

# Plates and ids mix letters and digits ("۲۲ی۴۵۶" -> "22ی456"): split them so a part matches.
# Digits here are ASCII: the normalised key has no Persian or Arabic-Indic ones left, and other
# scripts' digits are rare enough to stay glued. Anchored on digit runs, not on every position
# (a look-behind pattern tried at each character cost 1.3 ms on a 10 KB mail).
_DIGIT_RUN = re.compile(r"[0-9]+")
_LETTER = re.compile(r"[^\W\d]")


def _apart(run: re.Match[str]) -> str:
    text, (start, end) = run.string, run.span()
    before = " " if start and _LETTER.match(text, start - 1) else ""
    after = " " if end < len(text) and _LETTER.match(text, end) else ""
    return f"{before}{run[0]}{after}"


def letters_apart_from_digits(key: str) -> str:
    """`"22ی456"` -> `"22 ی 456"`. Most texts have no digits at all: a C search rules that out."""
    if not any(digit in key for digit in "0123456789"):
        return key
    return _DIGIT_RUN.sub(_apart, key)


def search_key(text: str) -> str:
    """The form both indexed text and queries take: Persian-normalised, letters apart from digits."""
    return letters_apart_from_digits(normalize_for_matching(text))


# Affixes Persian writers attach with a half-space, with nothing, or with a full space
# ("می‌خواهم", "میخواهم", "می خواهم"; "پرونده‌ها", "پرونده ها"). The index drops the half-space,
# so the first two are one word there and the third is two: a query matches either form.
_PREFIXES = ("نمی", "می")
_SUFFIXES = ("هایی", "های", "ها", "ترین", "تر")
_MIN_STEM = 2  # "میز" is not می + ز


def _split_forms(term: str) -> list[str]:
    """`term` as the words it is when the affixes it may carry are written apart: the prefix, the
    suffix, or both. All of them: a word can open like "می" and end like "ها" ("میلیون‌ها",
    "میوه‌ها"), and which one is an affix the spelling alone does not tell."""
    prefix = next((p for p in _PREFIXES if term.startswith(p) and len(term) - len(p) >= _MIN_STEM), "")
    suffix = next((s for s in _SUFFIXES if term.endswith(s) and len(term) - len(s) >= _MIN_STEM), "")
    forms: list[str] = []
    if prefix:
        forms.append(f"{prefix} {term[len(prefix):]}")
    if suffix:
        forms.append(f"{term[:-len(suffix)]} {suffix}")
        if prefix and len(stem := term[len(prefix):-len(suffix)]) >= _MIN_STEM:
            forms.append(f"{prefix} {stem} {suffix}")
    return forms


# A half-space the agent typed, carried through normalisation as a word character (FTS5's
# tokenizer splits on it, so a phrase holding one is the words apart): "بیمه‌نامه" may also be
# written "بیمه نامه" or "بیمهنامه", and the index keeps what the writer typed.
_HALF_SPACE, _HINT = "\u200c", "_"
_MAX_HINTS = 3  # parts joined or apart at each hint: 2 ** 3 spellings at most
_PUNCTUATION = re.compile(r"[^\w\s]")


def search_match(query: str) -> str:
    """The FTS5 expression an agent's free-text `query` asks the full-text index (see fts_match).
    Punctuation inside a typed word is a hint too: "ali@example.com" or "0912-123-4567" asks for
    its pieces next to each other (or joined), not for "ali", "example" and "com" anywhere."""
    key = _PUNCTUATION.sub(_HINT, search_key(query.replace(_HALF_SPACE, _HINT)))
    # A hint beside a space or at a word's end marks nothing ("می‌ خواهم" is "می خواهم").
    return fts_match([word.strip(_HINT) for word in search_words(key)])


def _spellings(term: str) -> list[str]:
    """Every spelling of one query word the text may hold: at its half-spaces joined or apart,
    else joined and with each affix it may carry apart."""
    parts = [part for part in term.split(_HINT) if part]
    if len(parts) == 1:
        return [parts[0], *_split_forms(parts[0])]
    if len(parts) > _MAX_HINTS + 1:
        return ["".join(parts), " ".join(parts)]
    return ["".join(p for pair in zip(parts, (*gaps, "")) for p in pair)
            for gaps in itertools.product(("", " "), repeat=len(parts) - 1)]


def fts_match(terms: list[str]) -> str:
    """An FTS5 expression finding every term (as a word prefix), each in both spellings of its
    affix: joined ("میخواهم") or apart ("می خواهم"), whichever the query and the text used.

    `terms` in the query's order with its repeats ("می خواهم می بینم" is two verbs, each with
    its own "می"); a repeated group is asked for once."""
    groups: list[str] = []
    i = 0
    while i < len(terms):
        term = terms[i]
        following = terms[i + 1] if i + 1 < len(terms) else ""
        if following and (term in _PREFIXES or following in _SUFFIXES):
            spellings, i = [f"{term}{following}", f"{term} {following}"], i + 2
        else:
            spellings, i = _spellings(term), i + 1
        phrases = [f'"{spelling}"*' for spelling in spellings]
        groups.append(phrases[0] if len(phrases) == 1 else f"({' OR '.join(phrases)})")
    # An explicit AND: FTS5 takes the implicit one between phrases only, and a parenthesised
    # group beside any other term ('"خسارت"* ("میخواهم"* OR …)') is a syntax error.
    return " AND ".join(dict.fromkeys(groups))


def _joined(*folded: str) -> str:
    # normalize_for_matching of texts joined by whitespace is their keys joined by one space:
    # nothing it does reaches across whitespace. So a key computed once serves twice.
    return " ".join(part for part in folded if part)


def message_search_body(subject: str, sender_name: str, sender: str, text: str, *,
                        folded_subject: str | None = None, folded_text: str | None = None) -> str:
    """What the full-text index holds for one message (`folded_*`: keys already computed)."""
    if folded_subject is None:
        folded_subject = normalize_for_matching(subject)
    if folded_text is None:
        folded_text = normalize_for_matching(text)
    # Part by part: nothing it does reaches across the joining space, and most texts have no
    # digits while the sender often has (a phone number, customer123@...): the long text is
    # then not scanned.
    return _joined(*map(letters_apart_from_digits,
                        (folded_subject, normalize_for_matching(f"{sender_name} {sender}"), folded_text)))


def infer_line_of_business(folded: str) -> str:
    """A cheap guess from the words used (normalised text), for channels that do not say
    (insurer payloads do)."""
    if any(w in folded for w in _AUTO_WORDS):
        return "auto"
    if any(w in folded for w in _HEALTH_WORDS):
        return "health"
    return "other"


@dataclass(frozen=True, slots=True)
class TextFacts:
    """What routing derives from the words alone."""

    line_of_business: str
    language: str
    sample: str
    folded: str


def text_facts(msg: InboundMessage, folded_subject: str | None = None, folded_text: str | None = None) -> TextFacts:
    """`folded_*`: normalize_for_matching of the subject and the whole text, when known."""
    sample = msg.text[:ROUTING_SAMPLE_CHARS]
    if folded_subject is None:
        folded_subject = normalize_for_matching(msg.subject)
    if folded_text is None or len(sample) < len(msg.text):
        folded_text = normalize_for_matching(sample)
    folded = _joined(folded_subject, folded_text)
    lob = dict(msg.meta).get("line_of_business") or infer_line_of_business(folded)
    return TextFacts(
        line_of_business=lob if lob in ("auto", "health", "other") else "other",
        language="fa" if looks_persian(f"{msg.subject}\n{sample}") else "en",
        sample=sample,
        folded=folded,
    )


@dataclass(frozen=True, slots=True)
class MessageAnalysis:
    claim_refs: tuple[str, ...]  # best first: the channel's own hint, then those in the text
    text: TextFacts
    search_body: str
    unattended_sender: bool  # an e-mail robot (noreply, MAILER-DAEMON): never acknowledged


def analyse(msg: InboundMessage, reference_prefix: str) -> MessageAnalysis:
    refs = find_claim_refs(f"{msg.subject}\n{msg.text}", reference_prefix)
    subject, text = normalize_for_matching(msg.subject), normalize_for_matching(msg.text)
    return MessageAnalysis(
        claim_refs=tuple(dict.fromkeys([msg.claim_ref_hint, *refs] if msg.claim_ref_hint else refs)),
        text=text_facts(msg, subject, text),
        search_body=message_search_body(msg.subject, msg.sender.display_name, msg.sender.value, msg.text,
                                        folded_subject=subject, folded_text=text),
        unattended_sender=msg.channel == "email" and is_unattended_address(msg.sender.value),
    )
