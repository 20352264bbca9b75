"""Replies through Kavenegar's `POST /v1/{API-KEY}/sms/send.json` (receptor, sender, message),
which answers `{"return": {"status": 200, "message": …}, "entries": [{"messageid": …}, …]}` and,
on an error, the same shape with the error's code as both HTTP and `return.status`; and their
delivery status through `GET /v1/{API-KEY}/sms/status.json?messageid=a,b` (entries of messageid,
status, statustext).

The API key is part of the URL: it is kept out of every detail recorded on the timeline.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from connectors.sms_segments import TextPlan
from ingest.records import DeliveryResult

REQUEST_TIMEOUT = 20.0
STATUS_IDS_PER_REQUEST = 500
# About the account or Kavenegar, not this message: retried with the outbox's backoff, so a
# top-up (418), a fixed key or IP allowance (401, 403, 407, 416: after a restart) lets the reply
# go. 409: Kavenegar's "server cannot answer now"; 451: too many requests.
RETRYABLE = frozenset({401, 403, 407, 409, 416, 418, 429, 451})


def receptor(e164: str) -> str:
    """Kavenegar's form of a number: Iranian numbers national (09121234567), others with 00."""
    if e164.startswith("+98"):
        return "0" + e164[3:]
    return "00" + e164[1:] if e164.startswith("+") else e164


def result_of(http_status: int, body: Any) -> DeliveryResult:
    """The outcome of one send request from Kavenegar's answer."""
    answer = body.get("return") if isinstance(body, dict) else None
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, int):
        return DeliveryResult(ok=False, detail=f"Kavenegar HTTP {http_status}: unreadable answer")
    if status == 200:
        # An entry per receptor, each with its own id and its own reports: all are kept.
        ids = tuple(str(entry["messageid"]) for entry in body.get("entries") or []
                    if isinstance(entry, dict) and "messageid" in entry)
        return DeliveryResult(ok=True, channel_message_id=ids[0] if ids else "", part_ids=ids if len(ids) > 1 else ())
    detail = f"Kavenegar error {status}: {answer.get('message', '')}"
    if status in RETRYABLE or (status >= 500 and status != 501):  # 501: a test account's own number only
        return DeliveryResult(ok=False, detail=detail)
    return DeliveryResult(ok=False, permanent=True, detail=detail)


async def send_sms(session: aiohttp.ClientSession, url: str, api_key: str, sender: str, to: str,
                   plan: TextPlan) -> DeliveryResult:
    """Each part of the plan in order; every part's message id is kept (the first is the
    reply's as shown), as Kavenegar reports on each."""
    ids: list[str] = []
    for part in plan.parts:
        form = {"receptor": receptor(to), "message": part, **({"sender": sender} if sender else {})}
        try:
            async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                outcome = result_of(response.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # aiohttp names the URL in some errors, and the URL holds the key.
            return DeliveryResult(ok=False, detail=f"Kavenegar unreachable: {type(exc).__name__}: {exc}"
                                  .replace(api_key, "…"))
        if not outcome.ok:
            return outcome
        ids += outcome.message_ids
    return DeliveryResult(ok=True, channel_message_id=ids[0] if ids else "", detail=plan.detail,
                          part_ids=tuple(ids) if len(ids) > 1 else ())


def statuses_of(body: Any) -> list[tuple[str, int]]:
    """(message id, status code) of each entry of a status.json answer; ValueError when it is
    not a success."""
    answer = body.get("return") if isinstance(body, dict) else None
    if not isinstance(answer, dict) or answer.get("status") != 200:
        raise ValueError(f"Kavenegar status.json: {answer or 'unreadable answer'}")
    return [(str(entry["messageid"]), entry["status"]) for entry in body.get("entries") or []
            if isinstance(entry, dict) and isinstance(entry.get("status"), int) and "messageid" in entry]


async def fetch_statuses(session: aiohttp.ClientSession, url: str, api_key: str,
                         message_ids: list[str]) -> list[tuple[str, int]]:
    """The status of each message, asked in batches; raises (the key scrubbed) when Kavenegar
    cannot answer."""
    found: list[tuple[str, int]] = []
    for start in range(0, len(message_ids), STATUS_IDS_PER_REQUEST):
        batch = ",".join(message_ids[start:start + STATUS_IDS_PER_REQUEST])
        try:
            async with session.get(url, params={"messageid": batch},
                                   timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as response:
                found += statuses_of(await response.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RuntimeError(f"{type(exc).__name__}: {exc}".replace(api_key, "…")) from None
    return found
