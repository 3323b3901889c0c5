"""The OpenAPI document Triage serves at /openapi.json.

FastAPI generates it from the routes, but the OpenAI endpoints read their raw body (so a bad body
is an OpenAI-shaped 400, not FastAPI's 422) and FastAPI cannot see those bodies. This module adds
them from the `protocol` models, documents the OpenAI error shape every error is rendered in, and
replaces FastAPI's 422 — which Triage never answers — with that 400. Anthropic's paths
(`/v1/messages...`) document Anthropic's error shape instead, as they render it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from triage.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from triage.protocols.anthropic import CountTokensRequest, MessagesRequest
from triage.protocols.responses import ResponsesRequest

REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"
ERROR_STATUSES = ("400", "401", "403", "404", "413", "429", "502", "503", "504")

# Before OpenAPI 3.2 the `schema` of an event stream describes each event.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}},
}

# Successful answers that are not JSON objects, or refusals that are not errors.
SPECIAL_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("/metrics", "get"): {
        "200": {
            "description": "Prometheus text exposition",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    ("/health/ready", "get"): {
        "503": {
            "description": "No model group has a usable deployment",
            "content": {JSON: {"schema": {"type": "object"}}},
        }
    },
}

# (path, request model, whether a 2xx may be an SSE stream)
BODIES: tuple[tuple[str, type[BaseModel], bool], ...] = (
    ("/v1/chat/completions", ChatCompletionRequest, True),
    ("/v1/completions", CompletionRequest, True),
    ("/v1/embeddings", EmbeddingRequest, False),
    ("/v1/responses", ResponsesRequest, True),
    ("/v1/messages", MessagesRequest, True),
    ("/v1/messages/count_tokens", CountTokensRequest, False),
    ("/v1/triage/explain", ChatCompletionRequest, False),
)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """What every Triage error looks like, as OpenAI renders it."""

    error: ErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    """What errors look like on Anthropic's paths, as Anthropic renders them."""

    type: Literal["error"]
    error: AnthropicErrorDetail
    request_id: str | None


ANTHROPIC_PREFIX = "/v1/messages"
Schema = dict[str, Any]


def _definitions() -> tuple[dict[type[BaseModel], Schema], Schema]:
    """A `$ref` per model, and every definition they need, keyed for `components.schemas`."""
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "validation") for _, model, _ in BODIES
    ]
    modes.append((ErrorResponse, "serialization"))
    modes.append((AnthropicErrorResponse, "serialization"))
    refs, top = models_json_schema(modes, ref_template=REF_TEMPLATE)
    return {model: refs[model, mode] for model, mode in modes}, top.get("$defs", {})


def _error(error_ref: Schema) -> Schema:
    return {"description": "Error", "content": {JSON: {"schema": error_ref}}}


def _error_responses(error_ref: Schema) -> Schema:
    return {status: _error(error_ref) for status in ERROR_STATUSES}


def _ok_response(streams: bool) -> Schema:
    content: Schema = {JSON: {"schema": {"type": "object"}}}
    if streams:
        content["text/event-stream"] = {"schema": SSE_EVENT}
    return {"description": "Successful Response", "content": content}


def _error_ref(path: str, refs: dict[type[BaseModel], Schema]) -> Schema:
    anthropic = path.startswith(ANTHROPIC_PREFIX)
    return refs[AnthropicErrorResponse if anthropic else ErrorResponse]


def _add_bodies(paths: Schema, refs: dict[type[BaseModel], Schema]) -> None:
    for path, model, streams in BODIES:
        errors = _error_responses(_error_ref(path, refs))
        # The OpenAI endpoints are plain Starlette routes, which FastAPI does not document.
        operation = paths.setdefault(path, {}).setdefault("post", _operation(path))
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": refs[model]}}}
        operation["responses"] = {"200": _ok_response(streams), **errors}


def _operation(path: str) -> Schema:
    """Summary and operationId as FastAPI would name a handler for `path`."""
    name = path.removeprefix("/v1/").replace("/", "_")
    return {
        "summary": name.replace("_", " ").title(),
        "operationId": f"{name}_{path.strip('/').replace('/', '_')}_post",
    }


def _document_errors(paths: Schema, refs: dict[type[BaseModel], Schema]) -> None:
    """Any status an operation does not list is an error in its path's shape, and FastAPI's 422
    is never sent: Triage renders its validation errors (query parameters) as a 400."""
    for path, item in paths.items():
        error_ref = _error_ref(path, refs)
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None:
                responses["400"] = _error(error_ref)
            responses.update(SPECIAL_RESPONSES.get((path, method), {}))
            responses["default"] = _error(error_ref)


def build_openapi(app: FastAPI) -> Schema:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    refs, definitions = _definitions()
    components: Schema = schema.setdefault("components", {})
    fastapi_schemas: Schema = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        fastapi_schemas.pop(name, None)
    fastapi_schemas.update(definitions)
    _add_bodies(schema["paths"], refs)
    _document_errors(schema["paths"], refs)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi(app)` at /openapi.json, built on first request and cached."""

    def openapi() -> Schema:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
