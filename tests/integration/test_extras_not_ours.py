"""An unknown field a client sends is kept only to be ignored: where it has the name of a field
another endpoint declares (`stream`, `max_tokens`, `messages` on /v1/embeddings), Triage never
reads it as its own: no stream is started, no cap refuses it, and it is not sent upstream."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import config_from, deployment
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread


async def _post(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        return await client.post(path, json=body)


async def test_chat_field_names_on_an_embedding_request_are_never_read_as_ours(
    fake: FakeUpstreamThread,
) -> None:
    config = config_from(
        {
            "model_list": [deployment("e", "hosted_vllm/fake-embedding", fake.url + "/v1")],
            "server": {"max_messages": 2, "max_tokens": 100},
        }
    )
    hostile = {
        "stream": True,
        "max_tokens": 10**9,
        "max_completion_tokens": 10**9,
        "messages": [{"role": "user", "content": "x"}] * 50,
    }
    body = {"model": "e", "input": "hello there", **hostile}
    response = await _post(create_app(config), "/v1/embeddings", body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["data"][0]["object"] == "embedding"
    sent = fake.requests()[-1].json
    assert not set(hostile) & set(sent)


async def test_the_same_fields_declared_by_chat_are_read_and_capped(
    fake: FakeUpstreamThread,
) -> None:
    """The other side of the test above: on chat, where they are declared, they count."""
    config = config_from(
        {
            "model_list": [deployment("m", "hosted_vllm/fake-model", fake.url + "/v1")],
            "server": {"max_messages": 2, "max_tokens": 100},
        }
    )
    app = create_app(config)
    messages = [{"role": "user", "content": "x"}]
    too_many = await _post(app, "/v1/chat/completions", {"model": "m", "messages": messages * 3})
    assert too_many.status_code == 400
    assert too_many.json()["error"]["param"] == "messages"
    capped = {"model": "m", "messages": messages, "max_tokens": 101}
    assert (await _post(app, "/v1/chat/completions", capped)).json()["error"]["param"] == (
        "max_tokens"
    )
    streamed = {"model": "m", "messages": messages, "stream": True}
    response = await _post(app, "/v1/chat/completions", streamed)
    assert response.headers["content-type"].startswith("text/event-stream")
