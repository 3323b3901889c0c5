"""Triage's own endpoints: POST /v1/triage/explain (a routing decision without calling any model)
and GET /v1/triage/usage (spend, savings and volume from the ledger, as `triage report` prints)."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from triage.api.deps import meta, parse, state
from triage.errors import BadRequest, NotFound
from triage.explain import explain
from triage.protocol import ChatCompletionRequest
from triage.report import parse_since, summarize

router = APIRouter()


@router.post("/v1/triage/explain")
async def explain_route(request: Request) -> dict[str, Any]:
    body = await parse(request, ChatCompletionRequest)
    service = state(request).service
    return explain(service, body, meta(request))


@router.get("/v1/triage/usage")
async def usage(
    request: Request,
    since: str | None = Query(default=None),
    by: Literal["task", "route", "deployment", "day", "tier"] = Query(default="task"),
) -> dict[str, Any]:
    ledger = state(request).extras.get("ledger")
    if ledger is None:
        raise NotFound("the usage ledger is disabled (triage.ledger.enabled)", code="no_ledger")
    try:
        start = parse_since(since, now=time.time()) if since else None
    except ValueError as exc:
        raise BadRequest(str(exc), param="since") from None
    report: dict[str, Any] = summarize(ledger.rows(start), by=by).to_json()
    return report
