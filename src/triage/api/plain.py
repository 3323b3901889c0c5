"""Routes that answer a JSON object, declared without a response model.

FastAPI builds a pydantic response model for every route whose handler is annotated
`-> dict[...]`, and a field for every typed path or query parameter; the first of them imports
`pydantic.v1` for a compatibility check. Together that was ~40-60 ms of start-up for a handful of
rarely called routes (models, health, insight, admin). These routes declare
`response_model=None`, answer through `json_object` (the bytes FastAPI's own fast path writes:
pydantic-core's JSON of the dict), and say in `ok_object` / `PARAMETER_ERRORS` what FastAPI
would have put in /openapi.json for them.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from triage.api.render import FastJSONResponse

JSON = "application/json"

PARAMETER_ERRORS: dict[int | str, dict[str, Any]] = {422: {"description": "Validation Error"}}
"""A route that reads parameters documents FastAPI's 422 (api/openapi.py turns it into Triage's
400, the status its parameter errors are answered with)."""


def json_object(content: dict[str, Any]) -> Response:
    """`content` as FastAPI answers a `-> dict[str, Any]` handler's return value: the same
    pydantic-core JSON and headers, through the hot path's own response."""
    return FastJSONResponse(content)


def ok_object(title: str, values: bool | dict[str, str] = True) -> dict[int | str, dict[str, Any]]:
    """The 200 answer FastAPI documents for a handler annotated `-> dict[str, ...]`."""
    schema = {"additionalProperties": values, "title": title, "type": "object"}
    return {200: {"content": {JSON: {"schema": schema}}}}


def path_parameter(name: str, title: str) -> dict[str, Any]:
    """A required string path parameter as FastAPI documents one."""
    schema = {"title": title, "type": "string"}
    return {"in": "path", "name": name, "required": True, "schema": schema}
