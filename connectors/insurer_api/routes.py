"""The insurer API's HTTP handlers: authenticate the key, validate, run one write operation or
read, answer JSON (errors as RFC 9457 problem+json). Each key sees only its insurer's claims."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from config.logs import log_context
from connectors.http_front import use_error_shape
from connectors.insurer_api.openapi import DEFAULT_PAGE, openapi_document
from connectors.insurer_api.problems import front_problem, problem, validation_problem
from ingest.apply import ApplyContext
from ingest.claims_ops import (
    ClaimFiling, ClaimNotFound, Document, IdempotencyKeyReused, InsurerMessage, body_fingerprint,
    filing_fingerprint, open_claim, post_insurer_message, request_fingerprint,
)
from ingest.insurers import InsurerClient, claim_view, insurer_for_key, list_claims, read_page_cursor
from ingest.store import Store, iso
from router.claimref import parse_claim_ref
from router.workflow import TRANSITIONS

_Body = TypeVar("_Body", bound=BaseModel)
log = structlog.get_logger(__name__)
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.ASCII)
_SPACE_FOR_PLUS = re.compile(r" (?=\d{2}:\d{2}$)", re.ASCII)
_INTEGER = re.compile(r"-?\d{1,9}", re.ASCII)
CLIENT = web.RequestKey("insurer_client", InsurerClient)


class Blobs(Protocol):
    def put(self, data: bytes) -> str: ...


@dataclass
class InsurerApi:
    store: Store
    context: ApplyContext
    blobs: Blobs
    connector: str
    base_path: str
    max_page: int

    def install(self, app: web.Application) -> None:
        base = self.base_path.rstrip("/")
        use_error_shape(app, base, front_problem)
        app.router.add_get(f"{base}/openapi.json", self.openapi)
        app.router.add_post(f"{base}/claims", self._authenticated(self.open_claim))
        app.router.add_get(f"{base}/claims", self._authenticated(self.list_claims))
        app.router.add_get(f"{base}/claims/{{ref}}", self._authenticated(self.get_claim))
        app.router.add_post(f"{base}/claims/{{ref}}/messages", self._authenticated(self.post_message))

    # -- plumbing --------------------------------------------------------------------------------

    def _authenticated(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            scheme, _, key = request.headers.get("Authorization", "").partition(" ")
            client = await insurer_for_key(self.store, key.strip()) if scheme.lower() == "bearer" and key else None
            if client is None:
                log.warning("insurer_api_unauthorised", path=request.path, remote=request.remote)
                return problem(401, "unauthorised", "Unauthorised", "a valid API key is required as a Bearer token",
                               instance=request.path, headers={"WWW-Authenticate": 'Bearer realm="insurer-api"'})
            request[CLIENT] = client
            with log_context(insurer=client.name):
                return await handler(request)

        return wrapped

    async def _body(self, request: web.Request) -> tuple[bytes, Any]:
        """The raw body, once it is known to be JSON (the models then validate the text itself),
        and the parsed document (what keys stored before the fourteenth session are bound to)."""
        raw = await request.read()
        try:
            return raw, json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Refusal(problem(400, "malformed-json", "The body is not JSON", str(exc), instance=request.path))
        except RecursionError:  # thousands of nested arrays: the parser's stack, not a bug of ours
            raise _Refusal(problem(400, "malformed-json", "The body is not JSON", "nested too deeply",
                                   instance=request.path)) from None

    @staticmethod
    def _idempotency_key(request: web.Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            raise _Refusal(problem(422, "validation-error", "The request is not valid",
                                   "Idempotency-Key: expected 1 to 255 characters", instance=request.path,
                                   errors=[{"field": "Idempotency-Key", "pointer": "", "detail": "1 to 255 characters"}]))
        return key

    def _ref(self, request: web.Request) -> str:
        """The claim reference in the path, as we print it: one copied from a Persian text
        ("PV-۱۴۰۵-۰۰۰۱۲۳") or typed in lower case names the same claim, as it does in a mail."""
        ref = request.match_info["ref"]
        return parse_claim_ref(ref, self.context.reference_prefix) or ref

    async def _store_documents(self, documents: tuple[Document, ...]) -> list[tuple[int, str | None]]:
        stored: list[tuple[int, str | None]] = []
        for doc in documents:
            data = doc.data()
            stored.append((len(data), await asyncio.to_thread(self.blobs.put, data)) if data is not None else (0, None))
        return stored

    # -- handlers --------------------------------------------------------------------------------

    async def _read(self, request: web.Request, model: type[_Body]) -> tuple[str | None, Any, _Body] | web.StreamResponse:
        """Idempotency key, the parsed JSON and the validated document, or the problem response."""
        try:
            key = self._idempotency_key(request)
            raw, document = await self._body(request)
            return key, document, model.model_validate_json(raw)
        except _Refusal as refusal:
            return refusal.response
        except ValidationError as exc:
            return validation_problem(exc, request.path)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.base_path.rstrip("/"), self.max_page))

    async def open_claim(self, request: web.Request) -> web.StreamResponse:
        client = request[CLIENT]
        read = await self._read(request, ClaimFiling)
        if isinstance(read, web.StreamResponse):
            return read
        key, document, filing = read
        stored = await self._store_documents(filing.documents)
        fingerprints = (filing_fingerprint(request.method, request.path, filing),
                        body_fingerprint(request.method, request.path, document, filing=True))
        try:
            opened = await self.store.write(open_claim(
                client.name, filing, self.context, connector=self.connector, idempotency_key=key,
                fingerprints=fingerprints, stored_documents=stored))
        except IdempotencyKeyReused as exc:
            return problem(422, "idempotency-key-reused", "Idempotency-Key reused", str(exc), instance=request.path)
        log.info("insurer_claim_opened", ticket=opened.ref, created=opened.created, replayed_by=opened.replayed_by,
                 claim_number=filing.claim_number)
        view = await claim_view(self.store, client.name, opened.ref)
        headers = {"Location": f"{self.base_path.rstrip('/')}/claims/{opened.ref}"}
        if opened.replayed_by:
            headers["Idempotent-Replayed"] = opened.replayed_by
        return web.json_response(view, status=201 if opened.created else 200, headers=headers)

    async def post_message(self, request: web.Request) -> web.StreamResponse:
        client = request[CLIENT]
        ref = self._ref(request)
        read = await self._read(request, InsurerMessage)
        if isinstance(read, web.StreamResponse):
            return read
        key, document, message = read
        stored = await self._store_documents(message.documents)
        path = f"{self.base_path.rstrip('/')}/claims/{ref}/messages"  # as we spell the claim: a retry may not
        fingerprints = (request_fingerprint(request.method, path, message),
                        body_fingerprint(request.method, path, document))
        try:
            posted = await self.store.write(post_insurer_message(
                client.name, ref, message, connector=self.connector, idempotency_key=key,
                fingerprints=fingerprints, stored_documents=stored))
        except ClaimNotFound:
            return _not_found(request, ref)
        except IdempotencyKeyReused as exc:
            return problem(422, "idempotency-key-reused", "Idempotency-Key reused", str(exc), instance=request.path)
        log.info("insurer_message_posted", ticket=posted.ref, message_row=posted.message_id, replayed=posted.replayed)
        return web.json_response({"reference": posted.ref, "message_id": posted.message_id},
                                 status=200 if posted.replayed else 201)

    async def get_claim(self, request: web.Request) -> web.StreamResponse:
        ref = self._ref(request)
        view = await claim_view(self.store, request[CLIENT].name, ref)
        return web.json_response(view) if view is not None else _not_found(request, ref)

    async def list_claims(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        errors = [(name, "unknown query parameter; expected status, updated_since, cursor or limit")
                  for name in sorted(set(query) - _LIST_PARAMETERS)]
        status = query.get("status")
        if status is not None and status not in TRANSITIONS:
            errors.append(("status", f"expected one of {', '.join(sorted(TRANSITIONS))}"))
        since = query.get("updated_since")
        if since is not None:
            try:
                since = _utc_iso(since)
            except ValueError:
                errors.append(("updated_since", "expected an RFC 3339 date-time with an offset"))
        after = None
        if (cursor := query.get("cursor")) is not None:
            try:
                after = read_page_cursor(cursor)
            except ValueError:
                errors.append(("cursor", "expected the next_cursor of an earlier page"))
        limit_text = query.get("limit", str(min(DEFAULT_PAGE, self.max_page)))
        limit = int(limit_text) if _INTEGER.fullmatch(limit_text) else 0
        if not 1 <= limit <= self.max_page:
            errors.append(("limit", f"expected an integer from 1 to {self.max_page}"))
        if errors:
            return problem(422, "validation-error", "The request is not valid",
                           "; ".join(f"{f}: {d}" for f, d in errors), instance=request.path,
                           errors=[{"field": f, "pointer": "", "detail": d} for f, d in errors])
        claims, next_cursor = await list_claims(self.store, request[CLIENT].name, status=status,
                                                updated_since=since, after=after, limit=limit)
        return web.json_response({"claims": claims, "next_cursor": next_cursor})


_LIST_PARAMETERS = frozenset({"status", "updated_since", "cursor", "limit"})


class _Refusal(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _not_found(request: web.Request, ref: str) -> web.Response:
    return problem(404, "not-found", "No such claim", f"no claim {ref} for this insurer", instance=request.path)


def _utc_iso(text: str) -> str:
    """A client's date-time as the store writes them (UTC, microseconds), so strings compare.

    Two spellings integrators send are taken: an offset's `+` left unencoded in the query
    string, which arrives as a space (form encoding; a space there has no other reading), and
    fractions finer than microseconds (.NET's round-trip format has 7 digits, Java's and Go's up
    to 9), cut to microseconds: stored instants are whole microseconds, so `updated_at > since`
    selects the same claims."""
    match = _RFC3339.fullmatch(_SPACE_FOR_PLUS.sub("+", text).upper())
    if not match:
        raise ValueError(text)
    stamp, fraction, offset = match.groups()
    try:
        return iso(datetime.fromisoformat(stamp + (fraction or "")[:7] + offset.replace("Z", "+00:00"))) or ""
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it: no UTC instant to compare
        raise ValueError(text) from None
