"""The connector's pages on the shared HTTP front: the widget's files, a page that embeds the
widget, and the web form (GET shows it, POST stores the submission and shows the claim
reference once the ticket exists)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import unquote
from typing import TYPE_CHECKING

import structlog
from structlog.typing import FilteringBoundLogger
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from connectors.base import Sink, StoreUnavailable
from connectors.webchat import form, pages
from connectors.webchat.normalise import FORM_CHANNEL, FORM_FORMAT
from connectors.webchat.origin import origin_allowed, own_hosts
from connectors.webchat.ratelimit import RateLimiter, retry_after_header
from ingest.mime import sanitize_filename
from ingest.persian import persian_digits
from ingest.records import RawPayload

if TYPE_CHECKING:
    from connectors.webchat import WebchatSettings

log = structlog.get_logger(__name__)

FORM_PATH = "/webform"
TEXT_FIELD_LIMIT = 64 * 1024
# Multipart framing and the text fields on top of the attachments themselves.
FORM_OVERHEAD = 256 * 1024
# The form sends its 7 text fields and its files; this leaves room for another client's extra
# fields and for a file too many (answered "at most N files"), not for thousands of parts.
PART_SLACK = 16

TicketLookup = Callable[[int], Awaitable[str | None]]


class TooLarge(Exception):
    pass


class WebchatRoutes:
    def __init__(self, connector: str, settings: WebchatSettings, public_base_url: str, sink: Sink,
                 ws_port: Callable[[], int], ticket_for_inbox: TicketLookup | None) -> None:
        self.connector = connector
        self.settings = settings
        self.public_base_url = public_base_url
        self.sink = sink
        self.ws_port = ws_port
        self.ticket_for_inbox = ticket_for_inbox
        self.client_address = settings.client_address()
        # Every POST counts, valid or not, stored or a duplicate: counted before the body is
        # read, so parallel posts cannot all pass before the first is recorded.
        self.form_limiter = RateLimiter(settings.forms_per_ip_per_hour, window=3600.0)

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/webchat/widget.js", self._static("widget.js", "text/javascript"))
        app.router.add_get("/webchat/widget.css", self._static("widget.css", "text/css"))
        app.router.add_get("/webchat/", self.demo)
        app.router.add_get(FORM_PATH, self.show_form)
        app.router.add_post(FORM_PATH, self.submit_form)

    @staticmethod
    def _static(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        path = pages.STATIC / name

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(path, headers={"Content-Type": f"{content_type}; charset=utf-8",
                                                   "Cache-Control": "no-cache"})

        return handler

    # -- chat page -------------------------------------------------------------------------------

    def ws_url(self, request: web.Request) -> str:
        if self.settings.public_ws_url:
            return self.settings.public_ws_url
        host = request.url.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{'wss' if request.secure else 'ws'}://{host}:{self.ws_port()}/"

    async def demo(self, request: web.Request) -> web.Response:
        lang = "en" if request.query.get("lang") == "en" else "fa"
        html = pages.demo_page(widget_url="/webchat/widget.js", ws_url=self.ws_url(request), lang=lang,
                               max_chars=self.settings.max_message_chars)
        return web.Response(text=html, content_type="text/html")

    # -- web form --------------------------------------------------------------------------------

    def _form(self, *, token: str, values: dict[str, str], errors: dict[str, str], status: int) -> web.Response:
        html = pages.form_page(action=FORM_PATH, token=token, values=values, errors=errors,
                               max_chars=self.settings.max_message_chars, max_files=self.settings.form_max_files,
                               max_upload_bytes=self.settings.form_max_upload_bytes)
        return web.Response(text=html, content_type="text/html", status=status)

    def _notice(self, status: int, title: str, *paragraphs: str, reference: str = "") -> web.Response:
        html = pages.notice_page(title=title, paragraphs=list(paragraphs), back=FORM_PATH, reference=reference)
        return web.Response(text=html, content_type="text/html", status=status)

    async def show_form(self, request: web.Request) -> web.Response:
        # A fresh token per page view: a double submit of this page is stored once.
        return self._form(token=secrets.token_urlsafe(18), values={}, errors={}, status=200)

    async def submit_form(self, request: web.Request) -> web.Response:
        bound = log.bind(connector=self.connector, peer=request.remote)
        origin = request.headers.get("Origin")
        own = own_hosts(request.host, self.public_base_url)
        if not origin_allowed(origin, own, self.settings.allowed_origins):
            bound.warning("webform_origin_refused", origin=origin)
            return self._notice(403, "درخواست پذیرفته نشد", "این فرم فقط از صفحهٔ خود این سایت پذیرفته می‌شود.",
                                "This form is only accepted from this site's own page.")
        header = self.client_address.header
        client = self.client_address.key(request.remote, request.headers.getall(header, []) if header else [])
        retry_after = self.form_limiter.check(client, time.monotonic())
        if retry_after is not None:
            return self._too_many(bound, client, retry_after)
        limit = self.settings.form_max_upload_bytes
        body_limit = form_body_limit(limit, request.client_max_size)
        if request.content_length is not None and request.content_length > body_limit:
            return self._too_large(bound, request.content_length)
        try:
            fields, uploads = await self._read(request, limit, body_limit)
        except TooLarge as exc:
            return self._too_large(bound, int(str(exc)))
        except (ValueError, BadHttpMessage) as exc:  # BadHttpMessage: a part header aiohttp refuses
            return self._notice(400, "درخواست نامعتبر", f"The form could not be read: {exc}")
        submission, errors = form.validate(fields, self.settings.max_message_chars)
        if len(uploads) > self.settings.form_max_files:
            errors["attachments"] = (f"حداکثر {self.settings.form_max_files} فایل می‌توان پیوست کرد. "
                                     f"(At most {self.settings.form_max_files} files.)")
        if (submission is None or errors) and uploads and "attachments" not in errors:
            # A browser never fills a file input back in: said nowhere, the corrected form would
            # go without the documents the visitor believes are attached.
            errors["attachments"] = ("فایل‌های پیوست نگه داشته نشدند؛ لطفاً آن‌ها را دوباره انتخاب کنید. "
                                     "(The attached files were not kept: please choose them again.)")
        if submission is None or errors:
            bound.info("webform_invalid", fields=sorted(errors))
            token = fields.get("token", "") if "token" not in errors else secrets.token_urlsafe(18)
            return self._form(token=token, values=fields, errors=errors, status=422)
        return await self._store(bound, submission, uploads, request)

    def _too_large(self, bound: FilteringBoundLogger, size: int) -> web.Response:
        bound.warning("webform_too_large", size=size, limit=self.settings.form_max_upload_bytes)
        return self._notice(413, "پیوست‌ها بیش از حد بزرگ‌اند",
                            f"حجم پیوست‌ها روی هم حداکثر {pages.megabytes(self.settings.form_max_upload_bytes)} است.",
                            "The attachments are larger than allowed; nothing was stored.")

    def _too_many(self, bound: FilteringBoundLogger, client: str, retry_after: float) -> web.Response:
        bound.warning("webform_rate_limited", client=client, limit=self.settings.forms_per_ip_per_hour,
                      retry_after=round(retry_after))
        minutes = max(1, -(-int(retry_after) // 60))
        response = self._notice(429, "تعداد فرم‌ها بیش از حد مجاز است",
                                f"در یک ساعت گذشته از نشانی اینترنتی (IP) شما فرم‌های زیادی فرستاده شده و این فرم ثبت نشد؛ لطفاً {persian_digits(str(minutes))} دقیقهٔ دیگر دوباره بفرستید.",
                                f"Too many forms were sent from this address in the last hour; nothing was stored. "
                                f"Please try again in {minutes} minute(s).")
        response.headers["Retry-After"] = retry_after_header(retry_after)
        return response

    async def _read(self, request: web.Request, limit: int,
                    body_limit: int) -> tuple[dict[str, str], list[form.Upload]]:
        """Text fields and uploaded files, streamed so an oversized body is cut off early: aiohttp's
        multipart reader does not apply `client_max_size`, and a chunked body announces no size."""
        if request.content_type != "multipart/form-data":
            posted = await request.post()  # reads the body whole, within client_max_size
            return {k: v for k, v in posted.items() if isinstance(v, str)}, []
        fields: dict[str, str] = {}
        uploads: list[form.Upload] = []
        max_parts = len(form.FIELDS) + 1 + self.settings.form_max_files + PART_SLACK  # +1: the token
        parts = files = total = 0
        reader = await request.multipart()
        async for part in reader:
            parts += 1
            if parts > max_parts:
                raise ValueError(f"the form has more than {max_parts} parts")
            if not isinstance(part, BodyPartReader):
                continue  # nested multipart: no browser sends it for this form
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                total += len(chunk)
                if total > body_limit:
                    raise TooLarge(str(total))
                if part.filename is not None:
                    files += len(chunk)
                    if files > limit:
                        raise TooLarge(str(files))
                elif len(data) > TEXT_FIELD_LIMIT:
                    raise ValueError(f"field {part.name!r} is longer than {TEXT_FIELD_LIMIT} bytes")
            if part.filename is None:
                fields[part.name or ""] = field_text(bytes(data), part.get_charset("utf-8"))
            elif part.name == "attachments" and (part.filename or data):
                uploads.append(form.Upload(
                    _safe_filename(part.filename),
                    _valid_text(part.headers.get("Content-Type", "application/octet-stream")), bytes(data)))
        return fields, uploads

    async def _store(self, bound: FilteringBoundLogger, submission: form.Submission, uploads: list[form.Upload],
                     request: web.Request) -> web.Response:
        payload = RawPayload(
            channel=FORM_CHANNEL,
            connector=self.connector,
            dedupe_key=submission.token,
            fmt=FORM_FORMAT,
            body=form.document(submission, uploads),
            received_at=datetime.now(UTC),
            meta={"peer": request.remote or "", "origin": request.headers.get("Origin", "")},
        )
        try:
            outcome = await self.sink.accept(payload)
        except StoreUnavailable as exc:
            bound.error("webform_store_unavailable", error=str(exc))
            return self._notice(503, "ثبت موقتاً ممکن نیست", "لطفاً چند دقیقهٔ دیگر دوباره فرم را ارسال کنید.",
                                "The form could not be stored right now; please submit it again in a few minutes.")
        bound.info("webform_accepted", inbox_id=outcome.inbox_id, duplicate=outcome.duplicate,
                   attachments=len(uploads))
        reference = await self._wait_for_reference(outcome.inbox_id)
        if reference:
            return self._notice(200, "درخواست شما ثبت شد", "خسارت شما ثبت شد. این شماره را برای پیگیری نگه دارید.",
                                reference=reference)
        return self._notice(200, "درخواست شما دریافت شد",
                            f"درخواست شما با شناسهٔ {outcome.inbox_id} دریافت شد؛ شماره پرونده به‌زودی برایتان فرستاده می‌شود.",
                            f"Received as #{outcome.inbox_id}; the claim reference will be sent to you shortly.")

    async def _wait_for_reference(self, inbox_id: int) -> str | None:
        """The ticket is made by the processor just after the commit: usually milliseconds."""
        if self.ticket_for_inbox is None:
            return None
        deadline = time.monotonic() + self.settings.form_reference_wait_seconds
        delay = 0.01
        while True:
            try:
                reference = await self.ticket_for_inbox(inbox_id)
            except StoreUnavailable:
                return None
            if reference or time.monotonic() >= deadline:
                return reference
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)


def form_body_limit(upload_limit: int, client_max_size: int) -> int:
    """The most a form's parts may hold together: its attachments plus room for the text
    fields, and never more than `[http] max_body_bytes` (the app's client_max_size)."""
    return min(upload_limit + FORM_OVERHEAD, client_max_size)


def field_text(data: bytes, charset: str) -> str:
    """A text field in the charset its part names; a charset Python does not know is the
    sender's mistake (a 400), not ours."""
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        raise ValueError(f"unknown charset {charset!r}") from None


def _safe_filename(name: str) -> str:
    """Cleaned as mail attachment names are (`sanitize_filename`: the last path component, as some
    browsers send a full Windows path; no control or bidi-override characters, which turn
    "gpj.exe" round on an agent's screen; at most 150 characters keeping the extension).
    Browsers percent-encode `"` and line breaks in the name, some clients every non-ASCII byte."""
    return sanitize_filename(_valid_text(unquote(name)), "attachment")


def _valid_text(header_text: str) -> str:
    """aiohttp reads part headers as UTF-8 with bytes that are not valid UTF-8 surrogate-escaped;
    those cannot be stored (the form's document is UTF-8), so they become U+FFFD."""
    return header_text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
