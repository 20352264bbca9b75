"""HTML pages served by the connector, from templates in `static/` (string.Template; every value
inserted is HTML-escaped here, so customer input is never markup)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from html import escape
from pathlib import Path
from string import Template

from connectors.webchat.form import FIELDS
from ingest.persian import persian_digits

STATIC = Path(__file__).with_name("static")
# A message "Persian text. (English text.)": the English gloss in parentheses at its end.
_GLOSS = re.compile(r"(?s)(.*?)\s*(\([^()]*[A-Za-z][^()]*\))")


@cache
def _template(name: str) -> Template:
    return Template((STATIC / name).read_text(encoding="utf-8"))


def demo_page(*, widget_url: str, ws_url: str, lang: str, max_chars: int) -> str:
    fa = lang == "fa"
    return _template("demo.html").substitute(
        lang=lang, dir="rtl" if fa else "ltr",
        title=escape("گفتگوی آنلاین پرونده" if fa else "Parvandeh web chat"),
        intro=escape("نمونهٔ صفحه‌ای که ابزارک گفتگو در آن جاسازی شده است. کد جاسازی:" if fa
                     else "A page with the chat widget embedded. The embed code:"),
        widget_url=escape(widget_url), ws_url=escape(ws_url), max_chars=max_chars,
    )


def form_page(*, action: str, token: str, values: Mapping[str, str], errors: Mapping[str, str], max_chars: int,
              max_files: int, max_upload_bytes: int) -> str:
    field_errors = {
        f"error_{name}": (f'<p class="field-error" id="error-{name}" data-field="{name}">'
                          f'{bilingual(errors[name])}</p>' if name in errors else "")
        for name in (*FIELDS, "attachments")
    }
    # A field in error says so and reads its message out when focused (the claim type's fieldset,
    # a group, only the message).
    field_aria: dict[str, str] = {}
    for name in (*FIELDS, "attachments"):
        invalid = ' aria-invalid="true"' if name != "claim_type" else ""
        field_aria[f"aria_{name}"] = f'{invalid} aria-describedby="error-{name}"' if name in errors else ""
    summary = ""
    if errors:
        items = "".join(f'<li data-field="{escape(k)}">{bilingual(v)}</li>' for k, v in errors.items())
        summary = f'<div class="summary" role="alert"><p>لطفاً موارد زیر را اصلاح کنید:</p><ul>{items}</ul></div>'
    claim_type = values.get("claim_type", "auto")
    return _template("form.html").substitute(
        action=escape(action), token=escape(token), summary=summary, max_chars=max_chars,
        max_files=persian_digits(str(max_files)), max_upload=megabytes(max_upload_bytes),
        checked_auto="checked" if claim_type != "health" else "",
        checked_health="checked" if claim_type == "health" else "",
        **{name: escape(values.get(name, "")) for name in FIELDS if name != "claim_type"},
        **field_errors,
        **field_aria,
    )


def notice_page(*, title: str, paragraphs: list[str], back: str, reference: str = "") -> str:
    # dir="auto": an English paragraph on the right-to-left page reads left to right, its
    # full stop at its end rather than at its left.
    body = "".join(f'<p dir="auto">{escape(p)}</p>' for p in paragraphs)
    if reference:
        body += f'<p>شماره پرونده (claim reference):</p><p class="reference" id="reference">{escape(reference)}</p>'
    return _template("notice.html").substitute(title=escape(title), body=body, back=escape(back))


def bilingual(message: str) -> str:
    """A message as HTML, its English gloss "(…)" isolated left to right: in the right-to-left
    page the gloss's closing full stop and parenthesis would otherwise show at its left end,
    "(.Name is required)", or wrap to the next line ahead of its first word."""
    match = _GLOSS.fullmatch(message)
    if match is None:
        return escape(message)
    return f'{escape(match[1])} <span dir="ltr" lang="en">{escape(match[2])}</span>'


def megabytes(size: int) -> str:
    return f"{persian_digits(f'{size / 2**20:g}')} مگابایت"
