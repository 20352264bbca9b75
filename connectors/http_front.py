"""The shared HTTP front: what every route on the daemon's aiohttp application gets for free.

- a request id (`X-Request-Id` taken from the caller when sane, else made up), echoed back and
  bound into structlog's context for everything logged while handling the request;
- one structlog line per request (`http_request`: method, path, status, duration, and what the
  handler added to it: `message_accepted` with the inbox id); a route's `{secret}` path segment
  is logged as `{secret}`;
- errors as JSON `{"error": ..., "detail": ...}`, never aiohttp's HTML pages: 413 over the body
  limit (the app's `client_max_size`, set from `[http] max_body_bytes`), 404/405 from routing,
  503 when a handler hit `StoreUnavailable` (the channel must retry: nothing was committed), 500
  for bugs (logged with the traceback, not shown to the caller). A component that promises its
  callers another error shape under its path prefix (the insurer API: RFC 9457 problem+json)
  registers it with `use_error_shape`, and these errors take that shape there.

Also the small helpers webhook handlers share: the URL a channel signed, and HMAC-SHA256
verification of `X-Parvandeh-Signature` (calls now, the insurer API later).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from aiohttp import web

from config.logs import log_context, request_line
from connectors.base import StoreUnavailable

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
SIGNATURE_HEADER = "X-Parvandeh-Signature"
REQUEST_ID = web.RequestKey("request_id", str)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ErrorShape(Protocol):
    """Renders one of the front's errors: `error` is its snake_case code, `detail` the text."""

    def __call__(self, request: web.Request, status: int, error: str, detail: str,
                 headers: dict[str, str] | None) -> web.Response: ...


ERROR_SHAPES = web.AppKey("error_shapes", list[tuple[str, ErrorShape]])


class HttpError(Exception):
    """Raise from a handler to answer with the JSON error shape (log the why where you raise)."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


def json_error(status: int, error: str, detail: str = "", headers: dict[str, str] | None = None) -> web.Response:
    """The error shape of every route, unless its component chose another (`use_error_shape`)."""
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def use_error_shape(app: web.Application, prefix: str, shape: ErrorShape) -> None:
    """Answer the front's errors for paths under `prefix` (the prefix itself, or below it) in
    `shape` rather than the JSON error shape."""
    app[ERROR_SHAPES].append((prefix.rstrip("/"), shape))


def _error(request: web.Request, status: int, error: str, detail: str,
           headers: dict[str, str] | None = None) -> web.Response:
    path = request.path
    for prefix, shape in request.app.get(ERROR_SHAPES, ()):
        if path == prefix or path.startswith(prefix + "/"):
            return shape(request, status, error, detail, headers)
    return json_error(status, error, detail, headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    # Not uuid4: os.urandom costs ~0.3 ms a call on some VMs; ids need uniqueness, not secrecy.
    request_id = given if _SANE_REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"
    request[REQUEST_ID] = request_id
    # Unbound after: keep-alive connections reuse one task for many requests.
    with log_context(request_id=request_id):
        return await handler(request)


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    # On prepare rather than in the middleware: also covers streamed and websocket responses.
    if REQUEST_ID in request:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    with request_line() as handled:  # e.g. message_accepted, with its inbox id
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            log.info("http_request", method=request.method, path=logged_path(request), status=status,
                     duration_ms=round((time.perf_counter() - started) * 1000, 2), remote=request.remote, **handled)


def logged_path(request: web.Request) -> str:
    """The path as logged: a route's `{secret}` segment — the URL token proving a channel that
    cannot sign its webhooks (Kavenegar) — is shown as `{secret}`, never its value."""
    secret = request.match_info.get("secret", "")
    return request.path.replace(secret, "{secret}") if secret else request.path


@web.middleware
async def json_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Refuse an announced oversized body before reading it; chunked bodies are caught by
    # aiohttp while reading (HTTPRequestEntityTooLarge below).
    if request.content_length is not None and request.content_length > request.client_max_size:
        return _too_large(request)
    try:
        return await handler(request)
    except HttpError as exc:
        return _error(request, exc.status, exc.error, exc.detail)
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return _error(request, exc.status, _slug(exc.reason), exc.text or exc.reason, headers)
    except StoreUnavailable as exc:
        log.error("http_store_unavailable", path=request.path, error=str(exc))
        return _error(request, 503, "store_unavailable", "the message was not stored; retry later",
                      {"Retry-After": "5"})
    except Exception:
        log.exception("http_handler_failed", path=request.path)
        return _error(request, 500, "internal_error", "the request could not be handled; it was logged")


def _too_large(request: web.Request) -> web.Response:
    log.warning("http_body_too_large", path=request.path, limit=request.client_max_size,
                content_length=request.content_length)
    return _error(request, 413, "body_too_large", f"the request body is over the {request.client_max_size}-byte limit")


def _slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"


def install_http_front(app: web.Application) -> None:
    """Install the middlewares, outermost first: the request id is bound before anything logs,
    and the access log sees the status the error middleware settled on."""
    app.middlewares.extend([request_id_middleware, access_log_middleware, json_errors_middleware])
    app[ERROR_SHAPES] = []
    app.on_response_prepare.append(_echo_request_id)


def webhook_prefix(kind: str, name: str) -> str:
    """Where a connector instance mounts its webhooks: `/webhooks/<kind>` for the instance named
    after its kind (a `[kind]` table), `/webhooks/<kind>/<name>` for the others."""
    return f"/webhooks/{kind}" if name == kind else f"/webhooks/{kind}/{name}"


def signed_url(request: web.Request, public_base_url: str) -> str:
    """The URL a channel signed: behind a proxy the configured public base URL plus our path and
    query (the proxy's scheme and host are not ours to trust), else the URL as requested."""
    if public_base_url:
        return public_base_url.rstrip("/") + request.path_qs
    return str(request.url)


def hmac_sha256_hex(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_hmac_sha256(secret: str | bytes, body: bytes, signature: str) -> bool:
    """True when `signature` is the hex HMAC-SHA256 of the raw body under `secret`
    (compared in constant time; hex case ignored). An empty secret verifies nothing."""
    if not secret or not signature:
        return False
    return hmac.compare_digest(hmac_sha256_hex(secret, body), signature.strip().lower())
