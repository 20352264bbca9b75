"""RFC 9457 problem details: every error the insurer API answers with, as
`application/problem+json`, naming the offending field for validation errors."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import ValidationError

PROBLEM_TYPE = "application/problem+json"
_BASE = "urn:parvandeh:problem:"


def problem(status: int, slug: str, title: str, detail: str = "", *, instance: str = "",
            headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": _BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type=PROBLEM_TYPE,
                        charset="utf-8", headers=headers)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """One entry per invalid field: dotted name, JSON pointer (RFC 6901) and what was expected."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in err["loc"]]
        message = err["msg"].removeprefix("Value error, ")
        errors.append({"field": ".".join(loc) or "(body)",
                       "pointer": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in loc),
                       "detail": message})
    return errors


def validation_problem(exc: ValidationError, instance: str) -> web.Response:
    errors = field_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
    return problem(422, "validation-error", "The request is not valid", detail, instance=instance, errors=errors)


def front_problem(request: web.Request, status: int, error: str, detail: str,
                  headers: dict[str, str] | None) -> web.Response:
    """The shared HTTP front's own errors under the API's path (a body over the size limit, a
    bug, the store unavailable, routing's 404 and 405) as problems too: an integrator's client
    parses one error shape."""
    return problem(status, error.replace("_", "-"), HTTPStatus(status).phrase, detail, instance=request.path,
                   headers=headers)
