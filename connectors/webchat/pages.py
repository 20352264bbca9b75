"""HTML pages served by the connector, from templates in `static/` (string.Template; every value
inserted is HTML-escaped here, so customer input is never markup)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from html import escape
from pathlib import Path
from string import Template

from connectors.webchat.form import FIELDS
from ingest.persian import persian_digits

STATIC = Path(__file__).with_name("static")


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
        f"error_{name}": (f'<p class="field-error" data-field="{name}">{escape(errors[name])}</p>'
                          if name in errors else "")
        for name in (*FIELDS, "attachments")
    }
    summary = ""
    if errors:
        items = "".join(f'<li data-field="{escape(k)}">{escape(v)}</li>' for k, v in errors.items())
        summary = f'<div class="summary" role="alert"><p>لطفاً موارد زیر را اصلاح کنید:</p><ul>{items}</ul></div>'
    claim_type = values.get("claim_type", "auto")
    return _template("form.html").substitute(
        action=escape(action), token=escape(token), summary=summary, max_chars=max_chars,
        max_files=persian_digits(str(max_files)), max_upload=megabytes(max_upload_bytes),
        checked_auto="checked" if claim_type != "health" else "",
        checked_health="checked" if claim_type == "health" else "",
        **{name: escape(values.get(name, "")) for name in FIELDS if name != "claim_type"},
        **field_errors,
    )


def notice_page(*, title: str, paragraphs: list[str], back: str, reference: str = "") -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    if reference:
        body += f'<p>شماره پرونده (claim reference):</p><p class="reference" id="reference">{escape(reference)}</p>'
    return _template("notice.html").substitute(title=escape(title), body=body, back=escape(back))


def megabytes(size: int) -> str:
    return f"{persian_digits(f'{size / 2**20:g}')} مگابایت"
