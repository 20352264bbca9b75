"""Call logs: each finished call becomes a message of kind "call" on the caller's thread.

Routes (instance named "calls"; another instance name N appends /N):
  POST /webhooks/twilio/calls  Twilio Voice status callbacks, X-Twilio-Signature checked
  POST /webhooks/calls         generic PBX JSON (see records.py), X-Parvandeh-Signature =
                               hex HMAC-SHA256(shared secret, raw body)
Only final statuses are stored; ringing/in-progress callbacks answer 204 and store nothing, as do
calls from a withheld number (nobody to call back, nothing to match on) and internal calls.
An outgoing call (an agent calling a customer) goes on the callee's thread and opens no ticket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from aiohttp import web
from pydantic import field_validator

from config.loader import ConfigError, secret_from_env
from config.logs import log_context
from connectors.base import Connector, ConnectorSettings, Sink
from connectors.calls.records import (
    PBX_CALL_FORMAT, TWILIO_CALL_FORMAT, CallPolicy, CallRecord, NoCallerNumber, normalise_pbx_call,
    normalise_twilio_call, read_pbx_call, twilio_call,
)
from connectors.http_front import SIGNATURE_HEADER, HttpError, verify_hmac_sha256
from connectors.twilio.webhook import TwilioWebhook, auth_token
from ingest.records import RawPayload
from router.identity import normalize_phone

log = structlog.get_logger(__name__)


class CallsSettings(ConnectorSettings):
    secret_env: str = "PARVANDEH_CALLS_SECRET"
    pbx: bool = True
    twilio_voice: bool = True
    missed_calls_open_ticket: bool = True
    answered_calls_open_ticket: bool = False
    timezone: str = "Asia/Tehran"
    # The firm's numbers and trunk caller ids: a PBX call from one of them to an outside number
    # is an agent calling out (extensions are recognised without being listed).
    own_numbers: tuple[str, ...] = ()

    @field_validator("own_numbers")
    @classmethod
    def _e164(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        numbers = [normalize_phone(raw) for raw in value]
        bad = [raw for raw, number in zip(value, numbers, strict=True) if number is None]
        if bad:
            # The loader prefixes "expected".
            raise ValueError(f"phone numbers such as 02100000000 or +982100000000, not {', '.join(map(repr, bad))}")
        return tuple(number for number in numbers if number)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA time zone name such as Asia/Tehran") from None
        return value


class CallsConnector(Connector):
    kind = "calls"
    Settings = CallsSettings
    normalisers = {TWILIO_CALL_FORMAT: normalise_twilio_call, PBX_CALL_FORMAT: normalise_pbx_call}

    async def start(self, sink: Sink) -> None:
        settings: CallsSettings = self.settings  # type: ignore[assignment]
        if not (settings.pbx or settings.twilio_voice):
            raise ConfigError(f"[{self.name}]: pbx and twilio_voice are both false; expected at least one source of calls")
        self._sink = sink
        self._policy = CallPolicy(settings.timezone, settings.missed_calls_open_ticket,
                                  settings.answered_calls_open_ticket, frozenset(settings.own_numbers))
        suffix = "" if self.name == self.kind else f"/{self.name}"
        router = self.context.http_app.router
        if settings.pbx:
            self._secret = secret_from_env(settings.secret_env)
            if not self._secret:
                raise ConfigError(f"[{self.name}] secret_env: environment variable {settings.secret_env} is not set; "
                                  "expected the shared secret the PBX signs call records with (or set pbx = false)")
            router.add_post(f"/webhooks/calls{suffix}", self._on_pbx)
        if settings.twilio_voice:
            try:
                token = auth_token(self.name)
            except ConfigError as exc:
                # twilio_voice is on by default: a PBX-only firm must learn how to turn it off.
                raise ConfigError(f"{exc} for twilio_voice = true (Twilio Voice call callbacks);"
                                  " set twilio_voice = false if calls come only from a PBX") from None
            self._twilio = TwilioWebhook(token, self.context.settings.http.public_base_url)
            router.add_post(f"/webhooks/twilio/calls{suffix}", self._on_twilio)
        log.info("calls_webhooks_mounted", connector=self.name, pbx=settings.pbx, twilio_voice=settings.twilio_voice)

    async def stop(self) -> None:
        """Nothing of its own to stop: the routes go with the HTTP front."""

    async def _on_twilio(self, request: web.Request) -> web.Response:
        body, form = await self._twilio.read(request)
        try:
            record = twilio_call(form)
        except NoCallerNumber as exc:
            log.info("call_without_number_ignored", call_id=form.get("CallSid"), reason=str(exc))
            return web.Response(status=204)
        except ValueError as exc:
            raise HttpError(400, "malformed_webhook", str(exc)) from None
        if record is not None:
            await self._accept(record, TWILIO_CALL_FORMAT, body)
        return web.Response(status=204)

    async def _on_pbx(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_hmac_sha256(self._secret, body, request.headers.get(SIGNATURE_HEADER, "")):
            log.warning("calls_signature_rejected", path=request.path, remote=request.remote,
                        reason="missing" if SIGNATURE_HEADER not in request.headers else "mismatch")
            raise HttpError(403, "invalid_signature",
                            f"{SIGNATURE_HEADER} must be the hex HMAC-SHA256 of the raw body under the shared secret")
        try:
            record = read_pbx_call(body, self._policy)
        except NoCallerNumber as exc:
            log.info("call_without_number_ignored", reason=str(exc))
            return web.json_response({"stored": False, "reason": str(exc)})
        except ValueError as exc:  # also bad JSON, JSON nested too deep and bad UTF-8
            raise HttpError(400, "malformed_call_record", str(exc)) from None
        duplicate = await self._accept(record, PBX_CALL_FORMAT, body)
        return web.json_response({"stored": True, "duplicate": duplicate})

    async def _accept(self, record: CallRecord, fmt: str, body: bytes) -> bool:
        with log_context(channel="call", message_id=record.call_id):
            outcome = await self._sink.accept(RawPayload(
                channel="call", connector=self.name, dedupe_key=record.dedupe_key, fmt=fmt, body=body,
                received_at=datetime.now(UTC), meta=self._policy.as_meta(),
            ))
            log.info("call_received", status=record.status, inbound=record.inbound, inbox_id=outcome.inbox_id,
                     duplicate=outcome.duplicate)
        return outcome.duplicate
