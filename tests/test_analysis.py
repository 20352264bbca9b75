"""ingest.analysis computes each normalised key once and reuses it: that must give exactly what
normalising the joined text would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.analysis import _joined, analyse, search_key, text_facts
from ingest.persian import normalize_for_matching
from ingest.records import Identity, InboundMessage

# Letters in both scripts and their variants, digits, marks, invisible and odd spaces, ligatures.
TRICKY = st.lists(st.sampled_from(list("abcAB يكی۱۲3ةأإؤ\u200c\u200d\u200f\u064b\u0640\n\t") +
                                  ["ﻻ", "ﷲ", "e\u0301", "\u0627\u0653", "ǅ", "ß", "\u00a0", "\u2028", "ﬁ", "Σ"]),
                  max_size=12).map("".join)


@given(TRICKY, TRICKY, st.sampled_from([" ", "\n", "  \t"]))
def test_the_key_of_joined_texts_is_their_keys_joined(a: str, b: str, between: str) -> None:
    assert normalize_for_matching(a + between + b) == _joined(normalize_for_matching(a), normalize_for_matching(b))


@given(TRICKY, TRICKY, TRICKY)
def test_analysis_gives_what_normalising_from_scratch_gives(subject: str, text: str, name: str) -> None:
    msg = InboundMessage(channel="sms", channel_message_id="x", sender=Identity("phone", "+989121234567", name),
                         subject=subject, text=text)
    analysis = analyse(msg, "PV")
    assert analysis.search_body == search_key(f"{subject} {name} +989121234567 {text}")
    assert analysis.text == text_facts(msg)
