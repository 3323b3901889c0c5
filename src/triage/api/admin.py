"""Admin endpoints (admin key required when one is configured): reload the config, list keys."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from triage.api.deps import state
from triage.api.plain import json_object, ok_object
from triage.config import summary

router = APIRouter()


@router.post(
    "/admin/reload", response_model=None, responses=ok_object("Response Reload Admin Reload Post")
)
async def reload(request: Request) -> Response:
    app_state = state(request)
    app_state.runtime.guard.authenticate_admin(request.headers.get("authorization"))
    runtime = app_state.reload()
    return json_object({"status": "reloaded", "summary": summary(runtime.config)})


@router.get("/admin/keys", response_model=None, responses=ok_object("Response Keys Admin Keys Get"))
async def keys(request: Request) -> Response:
    app_state = state(request)
    guard = app_state.runtime.guard
    guard.authenticate_admin(request.headers.get("authorization"))
    return json_object({"object": "list", "data": await guard.summary()})
