"""Admin endpoints (admin key required when one is configured): reload the config, list keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from triage.api.deps import state
from triage.config import summary

router = APIRouter()


@router.post("/admin/reload")
async def reload(request: Request) -> dict[str, Any]:
    app_state = state(request)
    app_state.runtime.guard.authenticate_admin(request.headers.get("authorization"))
    runtime = app_state.reload()
    return {"status": "reloaded", "summary": summary(runtime.config)}


@router.get("/admin/keys")
async def keys(request: Request) -> dict[str, Any]:
    app_state = state(request)
    guard = app_state.runtime.guard
    guard.authenticate_admin(request.headers.get("authorization"))
    return {"object": "list", "data": await guard.summary()}
