"""The official openai SDK against the real app on a real server: success paths and every error
class the SDK distinguishes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread


def _config(fake: FakeUpstreamThread, **router: object) -> object:
    return config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/llama", fake.url + "/v1"),
                deployment(
                    "embedder",
                    "openai/text-embedding-3-small",
                    fake.url + "/v1",
                    params={"api_key": "sk-embed"},
                ),
            ],
            "router_settings": {"num_retries": 0, "timeout": 2, **router},
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    with serve(create_app(_config(fake))) as url:  # type: ignore[arg-type]
        yield url


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def test_chat_completion_through_the_sdk(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "say hello"}], seed=1, user="u1"
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.total_tokens > 0


def test_stream_through_the_sdk_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "count to five"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"auto", "local", "embedder"} <= ids
    model = client.models.retrieve("local")
    assert model.id == "local" and model.owned_by == "triage" and model.created > 0
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_embeddings_through_the_sdk(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embedder", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0


def test_malformed_json_is_a_400_in_openai_shape(gateway: str) -> None:
    response = httpx.post(
        gateway + "/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def test_bad_field_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "x"}], temperature=7
        )
    assert info.value.body["param"] == "temperature"  # type: ignore[index]


def test_unknown_model_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])


def test_upstream_rate_limit_raises_rate_limit_with_retry_after(
    client: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "7"


def test_upstream_timeout_is_a_504(client: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="hang")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 504


def test_every_deployment_failed_is_a_502_listing_each_attempt(fake: FakeUpstreamThread) -> None:
    config = config_from(
        {
            "model_list": [
                deployment("a", "hosted_vllm/m1", fake.url + "/v1"),
                deployment("b", "hosted_vllm/m2", fake.url + "/v1"),
            ],
            "router_settings": {"num_retries": 0, "fallbacks": [{"a": ["b"]}]},
        }
    )
    fake.add_fault(kind="status", status=500)
    fake.add_fault(kind="status", status=500)
    with serve(create_app(config)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    message = info.value.body["message"]  # type: ignore[index]
    assert "a/a-1" in message and "b/b-1" in message


def test_failure_after_first_byte_is_an_error_event_then_done(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="cut_stream", after_chunks=2)
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "local", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    ) as response:
        frames = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert frames[-1] == "data: [DONE]"
    assert frames[-2].startswith('data: {"error"')
    assert frames[0].startswith('data: {"id"')
