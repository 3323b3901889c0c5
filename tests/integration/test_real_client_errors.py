"""Errors on the litellm lane are Triage's own words (status, deployment id, at most the
upstream's own sanitised message), never litellm's text, a key or a URL's credentials; and the
documented `triage fake-upstream --port P` serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, free_port, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

KEY = "sk-planted-secret-5150"
# What litellm's own exception text carries, and what must never reach a client.
LEAKS = ("litellm", "exception", "received model group", "traceback", KEY, "user:pw", "redacted")

ODD_BODIES: list[tuple[int, Any]] = [
    (400, {"error": "bad thing happened"}),
    (400, f"<html>oops http://user:pw@10.0.0.1/x {KEY} Traceback (most recent call last)</html>"),
    (
        400,
        {
            "error": {
                "message": f"bad key {KEY} at http://user:pw@h/",
                "type": "invalid_request_error",
            }
        },
    ),
    (413, {"detail": [{"loc": ["body", "x"], "msg": "litellm.Exception"}]}),
    (500, "garbage \x00\x01 not json"),
    (500, {"error": {"message": f"internal: {KEY}"}}),
    (502, ""),
]


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    config = config_from(
        {
            "model_list": [
                deployment("ollama", "ollama_chat/llama3.2", fake.url),
                deployment(
                    "cloud",
                    "openai/gpt-4o-mini",
                    fake.url + "/v1",
                    lane="litellm",
                    params={"api_key": KEY},
                ),
            ],
            # Generous: the first call on the lane imports litellm, which takes seconds.
            "router_settings": {"num_retries": 0, "timeout": 60, "allowed_fails": 1000},
        }
    )
    with serve(create_app(config)) as url:
        yield url


def _assert_own_words(response: httpx.Response, deployment_id: str) -> None:
    assert 400 <= response.status_code < 600, response.text
    message = response.json()["error"]["message"]
    assert deployment_id in message
    assert not [leak for leak in LEAKS if leak.lower() in message.lower()], message


@pytest.mark.parametrize(("status", "body"), ODD_BODIES)
@pytest.mark.parametrize("model", ["ollama", "cloud"])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_are_told_in_our_own_words(
    gateway: str, fake: FakeUpstreamThread, status: int, body: Any, model: str, stream: bool
) -> None:
    fake.add_fault(kind="status", status=status, body=body)
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        timeout=60,
    )
    _assert_own_words(response, f"{model}-1")


@pytest.mark.parametrize("model", ["ollama", "cloud"])
def test_a_garbage_answer_is_told_in_our_own_words(
    gateway: str, fake: FakeUpstreamThread, model: str
) -> None:
    fake.add_fault(kind="status", status=200, body="not json at all {")
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    _assert_own_words(response, f"{model}-1")


def test_the_upstreams_own_400_message_is_kept_without_its_secrets(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=400, body=ODD_BODIES[2][1])
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": "cloud", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert response.status_code == 400
    assert "bad key *** at http://***@h/" in response.json()["error"]["message"]


def test_a_call_litellm_cannot_route_is_not_told_in_its_words(gateway: str) -> None:
    """Embeddings on a chat-only provider: litellm's "Unmapped LLM provider…" never shows."""
    response = httpx.post(
        gateway + "/v1/embeddings", json={"model": "ollama", "input": "hi"}, timeout=60
    )
    assert response.status_code == 400
    _assert_own_words(response, "ollama-1")


def test_cli_fake_upstream_serves_on_the_given_port() -> None:
    port = free_port()
    triage = os.path.join(os.path.dirname(sys.executable), "triage")
    process = subprocess.Popen(
        [triage, "fake-upstream", "--port", str(port), "--models", "m1,m2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # flushed once the socket is bound
        assert f"listening on http://127.0.0.1:{port}" in line, process.stderr
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()
        assert {m["id"] for m in models["data"]} == {"m1", "m2"}
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
