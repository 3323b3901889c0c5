"""Triage's own endpoints: POST /v1/triage/explain (a routing decision without calling any model)
and GET /v1/triage/usage (spend, savings and volume from the ledger, as `triage report` prints).

With client keys configured both take a key. Explain shows a client key only the groups it may
use; usage shows a client key its own requests and the admin key everyone's. The usage report
is aggregated by the ledger's database (SQLite or PostgreSQL: usage_db.py) in a thread, one at
a time, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from triage.api.callers import caller
from triage.api.deps import meta, parse, state
from triage.api.plain import PARAMETER_ERRORS, json_object, ok_object
from triage.errors import BadRequest, NotFound
from triage.metering import format_usd
from triage.protocol import ChatCompletionRequest

router = APIRouter()


By = Literal["task", "route", "deployment", "day", "tier"]
REPORT_BY: tuple[By, ...] = ("task", "route", "deployment", "day", "tier")
# What FastAPI's validation of a `by: By` query parameter answered (api/errors.py's wording).
BY_ERROR = "query.by: Input should be 'task', 'route', 'deployment', 'day' or 'tier'"
USAGE_PARAMETERS = [
    {
        "in": "query",
        "name": "since",
        "required": False,
        "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Since"},
    },
    {
        "in": "query",
        "name": "by",
        "required": False,
        "schema": {"default": "task", "enum": list(REPORT_BY), "title": "By", "type": "string"},
    },
]


# Its answer is documented by api/openapi.py; explain (and what it imports) loads on first use.
@router.post("/v1/triage/explain", response_model=None)
async def explain_route(request: Request) -> Response:
    from triage.explain import explain

    who = caller(request)
    body = await parse(request, ChatCompletionRequest)
    runtime = state(request).runtime
    runtime.guard.authorize(who.key, body.model, None)  # 403 for a model the key may not use
    answer = await explain(runtime.service, body, meta(request), who.key)
    allowed = None if who.key is None else runtime.guard.allowed_groups(who.key)
    return json_object(answer if allowed is None else _only(answer, allowed))


def _only(answer: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """`answer` without the groups (and their deployments) a key may not use."""
    route = dict(answer["route"])
    route["groups"] = [g for g in route["groups"] if g in allowed]
    for name in ("context_window_fallbacks", "content_policy_fallbacks"):
        route[name] = {
            group: [g for g in targets if g in allowed]
            for group, targets in route[name].items()
            if group in allowed
        }
    candidates = [c for c in answer["candidates"] if c["group"] in allowed]
    first = [c for c in candidates if route["groups"] and c["group"] == route["groups"][0]]
    estimate = min((Decimal(str(c["estimated_cost_usd"])) for c in first), default=Decimal(0))
    return {
        **answer,
        "route": route,
        "candidates": candidates,
        "estimated_cost_usd": format_usd(estimate),
    }


def _report_by(request: Request) -> By:
    """The `by` query parameter (its last value, as FastAPI read it), "task" when absent."""
    by = request.query_params.get("by", "task")
    for choice in REPORT_BY:
        if by == choice:
            return choice
    raise BadRequest(BY_ERROR, param="query.by")


@router.get(
    "/v1/triage/usage",
    response_model=None,
    responses={**ok_object("Response Usage V1 Triage Usage Get"), **PARAMETER_ERRORS},
    openapi_extra={"parameters": USAGE_PARAMETERS},
)
async def usage(request: Request) -> Response:
    from triage.report import parse_since

    by, since = _report_by(request), request.query_params.get("since")
    who = caller(request)
    app_state = state(request)
    ledger = app_state.extras.get("ledger")
    if ledger is None:
        raise NotFound("the usage ledger is disabled (triage.ledger.enabled)", code="no_ledger")
    try:
        start = parse_since(since, now=time.time()) if since else None
    except ValueError as exc:
        raise BadRequest(str(exc), param="since") from None
    key_id = None if who.key is None else who.key.id
    async with app_state.extras["usage_lock"]:
        report = await asyncio.to_thread(ledger.report, by=by, since=start, key_id=key_id)
    return json_object(report.to_json())
