"""The served OpenAPI document describes what the handlers really read and answer: the JSON
request bodies FastAPI cannot see, and the OpenAI error shape instead of FastAPI's 422."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI

from tests.helpers import config_from, deployment
from triage.api import create_app

BODIES = {
    "/v1/chat/completions": "ChatCompletionRequest",
    "/v1/completions": "CompletionRequest",
    "/v1/embeddings": "EmbeddingRequest",
    "/v1/triage/explain": "ChatCompletionRequest",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    nowhere = deployment("local", "hosted_vllm/fake-model", "http://127.0.0.1:9/v1")
    return create_app(config_from({"model_list": [nowhere]}))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


@pytest.mark.parametrize(("path", "model"), BODIES.items())
def test_each_openai_endpoint_documents_its_json_request_body(
    document: dict[str, Any], path: str, model: str
) -> None:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{model}"
    }
    assert model in document["components"]["schemas"]


@pytest.mark.parametrize("path", BODIES)
def test_each_openai_endpoint_documents_openai_shaped_errors(
    document: dict[str, Any], path: str
) -> None:
    responses = document["paths"][path]["post"]["responses"]
    for status in ("400", "401", "403", "404", "413", "429", "502", "503", "504", "default"):
        assert responses[status]["content"]["application/json"]["schema"] == ERROR_REF
    assert "200" in responses


def test_error_response_schema_is_the_openai_shape(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert schemas["ErrorDetail"]["required"] == ["message", "type", "param", "code"]


def test_no_operation_documents_fastapis_422(document: dict[str, Any]) -> None:
    for item in document["paths"].values():
        for operation in item.values():
            assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    names = {part.split('"')[0] for part in text.split('"#/components/schemas/')[1:]}
    assert names <= set(document["components"]["schemas"])


def test_the_document_is_built_once(app: FastAPI) -> None:
    assert app.openapi() is app.openapi()
