"""The one place errors are rendered: OpenAI-shaped JSON, or an SSE error event mid-stream."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from triage.errors import BadRequest, NotFound, TriageError, http_status, openai_type
from triage.wire import dumps

log = logging.getLogger("triage.api")


def error_body(err: TriageError) -> dict[str, Any]:
    body = err.body()
    body["error"]["type"] = openai_type(err)
    return body


def error_response(err: TriageError) -> JSONResponse:
    headers = {}
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after)))
    return JSONResponse(error_body(err), status_code=http_status(err), headers=headers)


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
    async def _triage(_: Request, exc: TriageError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("no such endpoint", code="not_found"))
        err = TriageError(str(exc.detail), code=str(exc.status_code))
        # Keep Starlette's headers: a 405 must say which methods are allowed (`Allow`).
        return JSONResponse(error_body(err), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)
        return error_response(TriageError("internal error in Triage", code="internal_error"))
