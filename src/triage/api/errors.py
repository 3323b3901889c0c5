"""The one place errors are rendered: OpenAI-shaped JSON, or an SSE error event mid-stream; on
Anthropic's paths (`/v1/messages...`) in Anthropic's shape, so its SDK and Claude Code read them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from triage.errors import BadRequest, NotFound, TriageError, http_status, openai_type
from triage.protocols.anthropic_output import error_object
from triage.wire import dumps

log = logging.getLogger("triage.api")

ANTHROPIC_PREFIX = "/v1/messages"


def error_body(err: TriageError) -> dict[str, Any]:
    body = err.body()
    body["error"]["type"] = openai_type(err)
    return body


def error_response(err: TriageError) -> JSONResponse:
    headers = {}
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after)))
    return JSONResponse(error_body(err), status_code=http_status(err), headers=headers)


def _headers(err: TriageError) -> dict[str, str]:
    if err.retry_after is None:
        return {}
    return {"retry-after": str(max(1, round(err.retry_after)))}


def rendered(request: Request, err: TriageError, status: int | None = None) -> JSONResponse:
    """`err` in the shape the request's path speaks."""
    if not request.url.path.startswith(ANTHROPIC_PREFIX):
        return error_response(err) if status is None else _with_status(err, status)
    return JSONResponse(
        error_object(err),
        status_code=status or http_status(err),
        headers=_headers(err),
    )


def _with_status(err: TriageError, status: int) -> JSONResponse:
    return JSONResponse(error_body(err), status_code=status)


def sse_error(err: TriageError) -> bytes:
    return b"data: " + dumps(error_body(err)) + b"\n\n"


def validation_error(exc: ValidationError | RequestValidationError) -> BadRequest:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "missing":
        message = "required field is missing"
    text = f"{param}: {message}" if param else message
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem(s))"
    return BadRequest(text, param=param)


def install(app: FastAPI) -> None:
    @app.exception_handler(TriageError)
    async def _triage(request: Request, exc: TriageError) -> JSONResponse:
        return rendered(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return rendered(request, validation_error(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return rendered(request, NotFound("no such endpoint", code="not_found"))
        err = TriageError(str(exc.detail), code=str(exc.status_code))
        response = rendered(request, err, exc.status_code)
        # Keep Starlette's headers: a 405 must say which methods are allowed (`Allow`).
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)
        return rendered(request, TriageError("internal error in Triage", code="internal_error"))
