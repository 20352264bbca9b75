"""Reply template placeholders."""

from console.templates import fill


def test_known_placeholders_are_filled() -> None:
    text = fill("{customer} عزیز، پرونده {ref} ({subject}) — {agent}",
                {"customer": "علی", "ref": "PV-1405-000001", "subject": "تصادف", "agent": "sara"})
    assert text == "علی عزیز، پرونده PV-1405-000001 (تصادف) — sara"


def test_unknown_or_empty_placeholders_and_stray_braces_stay_as_written() -> None:
    assert fill("{unknown} {0} { {customer}", {"customer": ""}) == "{unknown} {0} { {customer}"
