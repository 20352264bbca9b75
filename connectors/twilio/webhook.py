"""Reading a Twilio webhook: the urlencoded form, checked against `X-Twilio-Signature` with
twilio's own `RequestValidator` before anything is stored. Shared by messaging and voice.

Twilio signs base64(HMAC-SHA1(auth token, URL + sorted POST key/value pairs)). The URL is the one
Twilio requested, so behind a reverse proxy it is `[http] public_base_url` + path, not what we
see. The signature has no timestamp: a replayed request passes it, and is then a duplicate of
the stored MessageSid/CallSid (deduped), so replays store nothing new.
"""

from __future__ import annotations

import hmac

import structlog
from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from connectors.base import required_secret
from connectors.forms import parse_form
from connectors.http_front import HttpError, signed_url

log = structlog.get_logger(__name__)

TOKEN_ENV = "PARVANDEH_TWILIO_AUTH_TOKEN"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"


def auth_token(section: str) -> str:
    """The Twilio auth token from the environment; a clear start-up error when it is missing."""
    return required_secret(section, TOKEN_ENV, "the Twilio account's auth token (it signs every webhook)")


def signature_valid(token: str, url: str, form: MultiDict[str], signature: str) -> bool:
    if not signature:
        return False
    validator = RequestValidator(token)
    # The URL exactly as given matches nearly always; validate() then also tries it with and
    # without the default port (Twilio is inconsistent there), at twice the cost.
    exact = validator.compute_signature(url, form)
    return hmac.compare_digest(exact.encode(), signature.encode()) or validator.validate(url, form, signature)


class TwilioWebhook:
    """Verifies requests for one auth token and one public base URL."""

    def __init__(self, token: str, public_base_url: str) -> None:
        self._token = token
        self._public_base_url = public_base_url

    async def read(self, request: web.Request) -> tuple[bytes, MultiDict[str]]:
        """The raw body and its form, or HttpError: 415 not a form, 400 malformed, 403 not
        signed by Twilio for this URL. 413 over the size limit comes from the HTTP front."""
        if request.content_type != FORM_TYPE:
            raise HttpError(415, "unsupported_media_type", f"expected {FORM_TYPE}, got {request.content_type!r}")
        body = await request.read()
        try:
            form = parse_form(body)
        except ValueError as exc:
            log.warning("twilio_webhook_malformed", path=request.path, error=str(exc))
            raise HttpError(400, "malformed_form", str(exc)) from None
        url = signed_url(request, self._public_base_url)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature_valid(self._token, url, form, signature):
            log.warning("twilio_signature_rejected", path=request.path, signed_url=url, remote=request.remote,
                        reason="missing" if not signature else "mismatch")
            raise HttpError(403, "invalid_signature", f"{SIGNATURE_HEADER} is missing or does not match this request")
        return body, form
