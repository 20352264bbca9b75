"""The web form's fields: server-side validation with messages a visitor understands, and the
JSON document stored as the raw payload. Pure functions; the HTTP handling lives in `http.py`.

The stored body is our own canonical document (fields plus attachments in base64) rather than
the raw multipart bytes: the form is parsed once, by aiohttp, to validate it before anything is
stored, and the normaliser then reads a format we define instead of parsing multipart again."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from router.identity import normalize_email, normalize_phone

FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLAIM_TYPES = {"auto": "خودرو", "health": "درمان"}
FIELDS = ("name", "phone", "email", "policy_number", "claim_type", "description")
_LINE_BREAK = re.compile(r"\r\n?")


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Submission:
    token: str
    name: str
    phone: str  # E.164, or "" when not given
    email: str  # normalised, or "" when not given
    policy_number: str
    claim_type: str
    description: str


def lf_line_breaks(text: str) -> str:
    """Line breaks as LF. Browsers submit a textarea's line breaks as CRLF, but its `maxlength`
    counts each as one character (the value with LF): counted as sent, a description that fits
    the box would be refused as too long. A lone CR (old clients) is a line break too."""
    return _LINE_BREAK.sub("\n", text) if "\r" in text else text


def validate(fields: Mapping[str, str], max_chars: int) -> tuple[Submission | None, dict[str, str]]:
    """The submission, or None and a message per field that is wrong ("token" when the form
    itself is stale or forged)."""
    value = {name: lf_line_breaks(fields.get(name) or "").strip() for name in (*FIELDS, "token")}
    errors: dict[str, str] = {}
    if not FORM_TOKEN.fullmatch(value["token"]):
        errors["token"] = "فرم منقضی شده است؛ صفحه را دوباره باز کنید. (The form has expired: reload the page.)"
    if not value["name"]:
        errors["name"] = "نام را وارد کنید. (Name is required.)"
    elif len(value["name"]) > 200:
        errors["name"] = "نام طولانی‌تر از ۲۰۰ نویسه است. (Name is longer than 200 characters.)"
    phone = normalize_phone(value["phone"]) if value["phone"] else ""
    if phone is None:
        errors["phone"] = "شماره تلفن معتبر نیست؛ مانند ۰۹۱۲۱۲۳۴۵۶۷. (Phone number is invalid, e.g. 09121234567.)"
    email = normalize_email(value["email"]) if value["email"] else ""
    if email is None:
        errors["email"] = "نشانی ایمیل معتبر نیست. (Email address is invalid.)"
    if not value["phone"] and not value["email"]:
        errors["phone"] = "شماره تلفن یا ایمیل لازم است. (A phone number or an email address is required.)"
    if len(value["policy_number"]) > 64:
        errors["policy_number"] = "شماره بیمه‌نامه طولانی‌تر از ۶۴ نویسه است. (Policy number is too long.)"
    if value["claim_type"] not in CLAIM_TYPES:
        errors["claim_type"] = "نوع خسارت را انتخاب کنید: خودرو یا درمان. (Choose the claim type: auto or health.)"
    if not value["description"]:
        errors["description"] = "شرح حادثه را بنویسید. (Description is required.)"
    elif len(value["description"]) > max_chars:
        errors["description"] = (f"شرح حادثه بیش از {max_chars} نویسه است. "
                                 f"(Description is longer than {max_chars} characters.)")
    if errors:
        return None, errors
    return Submission(value["token"], value["name"], phone or "", email or "", value["policy_number"],
                      value["claim_type"], value["description"]), {}


def document(submission: Submission, uploads: list[Upload]) -> bytes:
    doc = {
        "version": 1,
        **asdict(submission),
        "attachments": [
            {"filename": u.filename, "content_type": u.content_type, "data": base64.b64encode(u.data).decode("ascii")}
            for u in uploads
        ],
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")
