"""The native lane end to end: the real app on uvicorn, every deployment forced onto the native
lane, talking to the fake upstream over loopback. Faults are injected at the HTTP boundary only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from tests.helpers import config_from, deployment, free_port, serve
from triage.api import create_app
from triage.config import Config
from triage.engine.lanes import Lanes
from triage.fakeupstream import FakeUpstreamThread

HELLO = [{"role": "user", "content": "say hello"}]


@contextmanager
def gateway(config: Config) -> Iterator[str]:
    """The real app with every deployment on the native lane, served on loopback."""
    lanes = Lanes(config, force="native")
    app = create_app(config, lanes=lanes)
    with serve(app) as url:
        yield url


def _config(*deployments: dict[str, Any], **router: Any) -> Config:
    return config_from(
        {
            "model_list": list(deployments),
            "router_settings": {"num_retries": 0, "timeout": 5, **router},
        }
    )


def _sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="client-key", max_retries=0)


def _local(fake: FakeUpstreamThread, group: str = "local", model: str = "llama", **info: Any):
    return deployment(group, f"hosted_vllm/{model}", fake.url + "/v1", **info)


def _primary_and_backup(fake: FakeUpstreamThread, primary_base: str | None = None) -> Config:
    primary = deployment("primary", "hosted_vllm/llama", primary_base or fake.url + "/v1")
    return _config(
        primary,
        _local(fake, "backup", "llama-backup"),
        fallbacks=[{"primary": ["backup"]}],
    )


def _sse_events(url: str, body: dict[str, Any]) -> list[str]:
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200, response.read()
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_chat_goes_through_the_native_lane_with_the_openai_sdk(fake: FakeUpstreamThread) -> None:
    with gateway(_config(_local(fake))) as url:
        raw = _sdk(url).chat.completions.with_raw_response.create(model="local", messages=HELLO)
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    assert raw.headers["x-triage-deployment"] == "local-1"
    # litellm would have sent its own user agent: this proves the native lane carried it.
    assert fake.requests()[-1].headers["user-agent"].startswith("triage/")


def test_upstream_gets_only_allow_listed_fields_and_the_configured_credentials(
    fake: FakeUpstreamThread,
) -> None:
    params = {
        "api_key": "sk-local",
        "organization": "org-1",
        "extra_headers": {"x-team": "blue"},
    }
    config = _config(deployment("local", "hosted_vllm/llama", fake.url + "/v1", params=params))
    body = {
        "model": "local",
        "messages": HELLO,
        "temperature": 0.5,
        "max_completion_tokens": 9,
        "api_base": "http://evil.example",
        "api_key": "sk-stolen",
        "mock_response": "pwned",
    }
    with gateway(config) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer client"}
        )
    assert response.status_code == 200, response.text
    sent = fake.requests()[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {
        "model": "llama",
        "messages": HELLO,
        "temperature": 0.5,
        "max_tokens": 9,  # vLLM and friends only know the older name
        "stream": False,
    }
    assert sent.headers["authorization"] == "Bearer sk-local"
    assert sent.headers["openai-organization"] == "org-1"
    assert sent.headers["x-team"] == "blue"


def test_stream_relays_every_chunk_and_ends_with_done(fake: FakeUpstreamThread) -> None:
    with gateway(_config(_local(fake))) as url:
        events = _sse_events(url, {"model": "local", "messages": HELLO, "stream": True})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.startswith("fake reply")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Triage always asks for usage upstream, but a client that did not ask never sees it.
    assert fake.requests()[-1].json["stream_options"] == {"include_usage": True}
    assert all(c.get("usage") is None and c["choices"] for c in chunks)


def test_stream_ends_with_a_usage_chunk_when_the_client_asks(fake: FakeUpstreamThread) -> None:
    with gateway(_config(_local(fake))) as url:
        stream = _sdk(url).chat.completions.create(
            model="local",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_embeddings_and_legacy_completions_use_their_own_endpoints(
    fake: FakeUpstreamThread,
) -> None:
    with gateway(_config(_local(fake), _local(fake, "embedder", "embed-small"))) as url:
        client = _sdk(url)
        vectors = client.embeddings.create(model="embedder", input=["a", "b"])
        completion = client.completions.create(model="local", prompt="say hi", max_tokens=5)
    assert [len(item.embedding) for item in vectors.data] == [8, 8]
    assert completion.choices[0].text
    embed, complete = fake.requests()[-2:]
    assert (embed.path, embed.json["model"], embed.json["input"]) == (
        "/v1/embeddings",
        "embed-small",
        ["a", "b"],
    )
    assert "stream" not in embed.json
    assert (complete.path, complete.json["max_tokens"]) == ("/v1/completions", 5)


def test_rate_limited_deployment_is_retried_at_once_on_its_sibling(
    fake: FakeUpstreamThread,
) -> None:
    config = _config(_local(fake, id="local-a"), _local(fake, id="local-b"), num_retries=1)
    fake.add_fault(kind="status", status=429, retry_after=30)
    started = time.monotonic()
    with gateway(config) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "local", "messages": HELLO}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-triage-attempts"] == "2"
    assert len(fake.requests()) == 2
    assert time.monotonic() - started < 10  # the sibling did not wait out Retry-After: 30


def test_rate_limit_surfaces_as_429_with_retry_after_once_retries_run_out(
    fake: FakeUpstreamThread,
) -> None:
    fake.add_fault(kind="status", status=429, retry_after=0.2, times=2)
    config = _config(_local(fake), num_retries=1)
    with gateway(config) as url, pytest.raises(openai.RateLimitError) as caught:
        _sdk(url).chat.completions.create(model="local", messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    assert len(fake.requests()) == 2


def test_server_error_falls_back_to_the_next_group(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="status", status=500, model="llama")
    with gateway(_primary_and_backup(fake)) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "primary", "messages": HELLO}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-triage-route"] == "backup"
    assert response.headers["x-triage-fallbacks"] == "1"
    assert [r.json["model"] for r in fake.requests()] == ["llama", "llama-backup"]


def test_stream_that_fails_before_its_first_chunk_falls_back(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="status", status=503, model="llama")
    with gateway(_primary_and_backup(fake)) as url:
        events = _sse_events(url, {"model": "primary", "messages": HELLO, "stream": True})
    assert events[-1] == "[DONE]"
    assert all("error" not in json.loads(e) for e in events[:-1])
    assert [r.json["model"] for r in fake.requests()] == ["llama", "llama-backup"]


def test_connection_refused_falls_back_to_the_next_group(fake: FakeUpstreamThread) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    with gateway(_primary_and_backup(fake, primary_base=dead)) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "primary", "messages": HELLO}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-triage-route"] == "backup"
    assert [r.json["model"] for r in fake.requests()] == ["llama-backup"]


@pytest.mark.parametrize(
    ("fault", "code"),
    [("cut_stream", "upstream_connection_error"), ("stream_error", "upstream_error")],
)
def test_stream_broken_after_its_first_chunk_ends_with_an_error_event_then_done(
    fake: FakeUpstreamThread, fault: str, code: str
) -> None:
    fake.add_fault(kind=fault, after_chunks=2)
    with gateway(_primary_and_backup(fake)) as url:
        events = _sse_events(url, {"model": "primary", "messages": HELLO, "stream": True})
    assert events[-1] == "[DONE]"
    *chunks, error = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 2 and all(c["choices"] for c in chunks)
    assert error["error"]["code"] == code
    assert fake.url not in error["error"]["message"]
    assert len(fake.requests()) == 1  # no fallback once bytes reached the client


def test_client_disconnect_mid_stream_cancels_the_upstream_request(
    fake: FakeUpstreamThread,
) -> None:
    fake.configure(tokens_per_second=20, completion_tokens=400)  # a 20 s generation
    body = {"model": "local", "messages": HELLO, "stream": True}
    with gateway(_config(_local(fake))) as url:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
        # Checked while the gateway still runs: shutting it down would close the pool anyway.
        deadline = time.monotonic() + 5
        while fake.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = fake.stats()
    assert stats["in_flight"] == 0
    assert stats["cancelled"] == 1


def test_context_window_error_reaches_the_client_as_context_length_exceeded(
    fake: FakeUpstreamThread,
) -> None:
    fake.add_fault(kind="context_window")
    with gateway(_config(_local(fake))) as url, pytest.raises(openai.BadRequestError) as caught:
        _sdk(url).chat.completions.create(model="local", messages=HELLO)
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize(
    ("status", "error"), [(400, openai.BadRequestError), (500, openai.InternalServerError)]
)
def test_upstream_error_bodies_are_reworded_not_relayed(
    fake: FakeUpstreamThread, status: int, error: type[openai.APIStatusError]
) -> None:
    message = "temperature is bad\nTraceback (most recent call last):\n  File secret_module.py"
    fake.add_fault(kind="status", status=status, message=message)
    with gateway(_config(_local(fake))) as url, pytest.raises(error) as caught:
        _sdk(url).chat.completions.create(model="local", messages=HELLO)
    text = caught.value.message
    assert "local-1" in text
    assert "Traceback" not in text and "secret_module" not in text
    # Only a client-caused 400 carries the upstream's first line: the client must fix it.
    assert ("temperature is bad" in text) is (status == 400)
