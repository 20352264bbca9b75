"""The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Request bodies are generated from
the same pydantic models that validate them, so the document cannot drift from the code."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from ingest.claims_ops import ClaimFiling, InsurerMessage
from router.workflow import TRANSITIONS

# Persian and Arabic-Indic digits too: the server reads "PV-۱۴۰۵-۰۰۰۰۱۲" as PV-1405-000012.
_REF_CHAR = "A-Za-z0-9\u06f0-\u06f9\u0660-\u0669"
REF_PATTERN = rf"^[{_REF_CHAR}][{_REF_CHAR}\-]{{0,39}}$"
DEFAULT_PAGE = 100  # claims in a page when the request names no `limit` (or `max_page`, if fewer)
_NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}
_PROBLEM_TYPES = ["application/problem+json"]


def _schemas() -> dict[str, Any]:
    _, defs = models_json_schema([(ClaimFiling, "validation"), (InsurerMessage, "validation")],
                                 ref_template="#/components/schemas/{model}")
    statuses = sorted(TRANSITIONS)
    summary = {
        "type": "object",
        "required": ["reference", "insurer_claim_number", "status", "team", "priority", "line_of_business",
                     "created_at", "updated_at", "closed_at"],
        "properties": {
            "reference": {"type": "string", "examples": ["PV-1405-000123"]},
            "insurer_claim_number": _NULLABLE_STRING,
            "status": {"type": "string", "enum": statuses},
            "team": {"type": "string", "description": "the queue (team) working the claim"},
            "priority": {"type": "string"},
            "line_of_business": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time",
                           "description": "when the claim last changed in a way this API shows (status, team, "
                                          "priority, SLA, timeline, thread): what `updated_since` compares"},
            "closed_at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        },
    }
    claim = {
        "allOf": [{"$ref": "#/components/schemas/ClaimSummary"}, {
            "type": "object",
            "required": ["details", "sla", "timeline", "messages"],
            "properties": {
                "details": {"type": "object"},
                "sla": {"type": "array", "items": {"type": "object"},
                        "description": "SLA clocks: target, due time and state"},
                "timeline": {"type": "array", "items": {
                    "type": "object", "required": ["at", "kind", "data"],
                    "properties": {"at": {"type": "string"}, "kind": {"type": "string"}, "data": {"type": "object"}}}},
                "messages": {"type": "array", "items": {
                    "type": "object", "required": ["id", "at", "direction", "channel", "from", "text"],
                    "properties": {"id": {"type": "integer"}, "at": {"type": "string"},
                                   "direction": {"type": "string", "enum": ["in", "out"]},
                                   "channel": {"type": "string"},
                                   "from": {"type": "string", "enum": ["insurer", "policyholder", "adjuster"]},
                                   "text": {"type": "string"}}}},
            },
        }],
    }
    return {
        **defs["$defs"],
        "ClaimSummary": summary,
        "Claim": claim,
        "ClaimList": {
            "type": "object", "required": ["claims", "next_cursor"],
            "properties": {"claims": {"type": "array", "items": {"$ref": "#/components/schemas/ClaimSummary"}},
                           "next_cursor": {**_NULLABLE_STRING, "description":
                                           "pass as `cursor` for the next page; null on the last page"}},
        },
        "MessageCreated": {
            "type": "object", "required": ["reference", "message_id"],
            "properties": {"reference": {"type": "string"}, "message_id": {"type": "integer"}},
        },
        "Problem": {
            "type": "object", "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"},
                "errors": {"type": "array", "items": {
                    "type": "object", "required": ["field", "pointer", "detail"],
                    "properties": {"field": {"type": "string"}, "pointer": {"type": "string"},
                                   "detail": {"type": "string"}}}},
            },
        },
    }


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {t: {"schema": {"$ref": "#/components/schemas/Problem"}} for t in _PROBLEM_TYPES}}


_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "the same key with the same request returns the first outcome"}
_REF = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string", "pattern": REF_PATTERN}}


@cache
def openapi_document(base_path: str, max_page: int) -> dict[str, Any]:
    unauthorised = _problem("missing or unknown API key")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Parvandeh insurer API", "version": "1.0.0",
                 "description": "Insurers open claim files and follow them. Each API key sees only its "
                                "insurer's claims. Status and SLA changes are POSTed to the insurer's webhook, "
                                "signed with HMAC-SHA256 under the webhook secret (hex, X-Parvandeh-Signature) "
                                "over the X-Parvandeh-Timestamp value, '.', and the raw body."},
        "servers": [{"url": base_path}],
        "security": [{"apiKey": []}],
        "paths": {
            "/claims": {
                "post": {
                    "operationId": "openClaim",
                    "parameters": [_IDEMPOTENCY],
                    "requestBody": {"required": True, "content": _json("ClaimFiling")},
                    "responses": {
                        "201": {"description": "claim opened", "content": _json("Claim")},
                        "200": {"description": "the claim this request (key or claim number) already opened",
                                "content": _json("Claim")},
                        "400": _problem("malformed JSON"),
                        "413": _problem("the body is over the daemon's size limit ([http] max_body_bytes)"),
                        "401": unauthorised,
                        "422": _problem("invalid field, or Idempotency-Key reused for another request"),
                    },
                },
                "get": {
                    "operationId": "listClaims",
                    "parameters": [
                        {"name": "status", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": sorted(TRANSITIONS)}},
                        {"name": "updated_since", "in": "query", "required": False,
                         "description": "claims whose status, team, priority, SLA state, timeline or thread "
                                        "changed after this instant (RFC 3339, with an offset: Z or +03:30)",
                         "schema": {"type": "string", "format": "date-time"}},
                        {"name": "cursor", "in": "query", "required": False,
                         "description": "the `next_cursor` of the page before", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": max_page,
                                    "default": min(DEFAULT_PAGE, max_page)}},
                    ],
                    "responses": {
                        "200": {"description": "claims, least recently updated first", "content": _json("ClaimList")},
                        "401": unauthorised,
                        "422": _problem("invalid query parameter"),
                    },
                },
            },
            "/claims/{ref}": {
                "get": {
                    "operationId": "getClaim",
                    "parameters": [_REF],
                    "responses": {
                        "200": {"description": "the claim", "content": _json("Claim")},
                        "401": unauthorised,
                        "404": _problem("no such claim for this insurer"),
                    },
                },
            },
            "/claims/{ref}/messages": {
                "post": {
                    "operationId": "postMessage",
                    "parameters": [_REF, _IDEMPOTENCY],
                    "requestBody": {"required": True, "content": _json("InsurerMessage")},
                    "responses": {
                        "201": {"description": "added to the thread", "content": _json("MessageCreated")},
                        "200": {"description": "replay of an Idempotency-Key", "content": _json("MessageCreated")},
                        "400": _problem("malformed JSON"),
                        "413": _problem("the body is over the daemon's size limit ([http] max_body_bytes)"),
                        "401": unauthorised,
                        "404": _problem("no such claim for this insurer"),
                        "422": _problem("invalid field"),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "the API key from `run.py insurer add`"}},
            "schemas": _schemas(),
        },
    }
