"""Outgoing webhooks to insurers: how a body is signed, and what an HTTP outcome means to the
outbox (2xx delivered; timeouts, 408, 429 and 5xx tried again with backoff; other 4xx final)."""

from __future__ import annotations

from connectors.http_front import SIGNATURE_HEADER, hmac_sha256_hex
from ingest.records import DeliveryResult

TIMESTAMP_HEADER = "X-Parvandeh-Timestamp"
DELIVERY_HEADER = "X-Parvandeh-Delivery"
_RETRYABLE_4XX = frozenset({408, 425, 429})


def signed_payload(timestamp: int, body: bytes) -> bytes:
    """What is signed: the timestamp, ".", then the exact body bytes. With the timestamp inside
    the signature a receiver can refuse a delivery captured and replayed later (a signature of
    the body alone verified under any timestamp header)."""
    return str(timestamp).encode() + b"." + body


def signed_headers(secret: str, body: bytes, *, timestamp: int, delivery_id: int, attempt: int) -> dict[str, str]:
    """The signature is the hex HMAC-SHA256 of `signed_payload` under the insurer's secret.
    The delivery id is the same on every attempt, so a receiver can drop repeats."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: hmac_sha256_hex(secret, signed_payload(timestamp, body)),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: str(delivery_id),
        "X-Parvandeh-Attempt": str(attempt),
    }


def retry_delay(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2 ** (attempt - 1))


def delivery_result(status: int | None, detail: str, *, attempt: int, base: float, cap: float) -> DeliveryResult:
    """`status` None means no HTTP answer at all (refused, reset, timed out)."""
    if status is not None and 200 <= status < 300:
        return DeliveryResult(ok=True, detail=f"HTTP {status}")
    if status is None or status >= 500 or status in _RETRYABLE_4XX:
        return DeliveryResult(ok=False, detail=detail, retry_after=retry_delay(attempt, base, cap))
    return DeliveryResult(ok=False, permanent=True, detail=detail)
