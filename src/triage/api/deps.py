"""What handlers need from the app, reached through the request (no globals)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from triage.api.errors import validation_error
from triage.config.schema import Config
from triage.errors import BadRequest, PayloadTooLarge
from triage.service import Meta, Service

M = TypeVar("M", bound=BaseModel)


@dataclass
class AppState:
    config: Config
    service: Service
    extras: dict[str, Any]


def state(request: Request) -> AppState:
    value: AppState = request.app.state.triage
    return value


async def parse(request: Request, model: type[M]) -> M:
    limit = state(request).config.server.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def meta(request: Request) -> Meta:
    rid = request.headers.get("x-request-id") or ""
    if not (0 < len(rid) <= 128 and rid.isprintable()):
        rid = uuid.uuid4().hex
    task = request.headers.get("x-triage-task")
    return Meta(request_id=rid, forced_task=task.strip() if task else None)
