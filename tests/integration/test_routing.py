"""Task routing end to end: aliases are classified and routed, concrete groups bypass the
classifier, headers force a task, and /v1/triage/explain decides without calling any model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

CODE = "Write a Python function that parses an ISO date string and returns a datetime object."
CHIT_CHAT = "Hey there! How was your weekend?"


def _config(fake: FakeUpstreamThread, **triage: Any) -> dict[str, Any]:
    base = fake.url + "/v1"
    return {
        "model_list": [
            deployment("local-small", "hosted_vllm/small", base),
            deployment("local-coder", "hosted_vllm/coder", base),
            deployment("cloud-large", "openai/gpt-4o", base, params={"api_key": "sk-x"}),
        ],
        "triage": {
            "default_route": ["local-small", "cloud-large"],
            "routes": {"code": ["local-coder", "cloud-large"], "reasoning": ["cloud-large"]},
            "ledger": {"enabled": False},
            **triage,
        },
    }


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    with serve(create_app(config_from(_config(fake)))) as url:
        yield url


def _ask(url: str, prompt: str, model: str = "auto", **headers: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": prompt}]},
        headers=headers,
        timeout=10,
    )


def test_alias_request_is_classified_and_routed_by_task(gateway: str) -> None:
    response = _ask(gateway, CODE)
    assert response.status_code == 200
    assert response.headers["x-triage-task"] == "code"
    assert response.headers["x-triage-tier"] == "heavy"
    assert response.headers["x-triage-route"] == "local-coder"
    assert float(response.headers["x-triage-confidence"]) > 0


def test_untouched_task_goes_to_the_default_route(gateway: str) -> None:
    response = _ask(gateway, CHIT_CHAT)
    assert response.headers["x-triage-route"] == "local-small"
    assert response.headers["x-triage-tier"] == "light"


def test_header_forces_the_task(gateway: str) -> None:
    response = _ask(gateway, CHIT_CHAT, **{"x-triage-task": "reasoning"})
    assert response.headers["x-triage-task"] == "reasoning"
    assert response.headers["x-triage-route"] == "cloud-large"
    assert response.headers["x-triage-reason"] == "header"


def test_unknown_task_header_is_a_400(gateway: str) -> None:
    response = _ask(gateway, CHIT_CHAT, **{"x-triage-task": "poetry"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-triage-task"


def test_concrete_model_bypasses_classification(gateway: str) -> None:
    response = _ask(gateway, CODE, model="local-small")
    assert response.headers["x-triage-route"] == "local-small"
    assert "x-triage-task" not in response.headers


def test_hard_prompts_escalate(fake: FakeUpstreamThread) -> None:
    config = config_from(
        _config(fake, escalate={"difficulty_above": 0.0, "route": ["cloud-large"]})
    )
    with serve(create_app(config)) as url:
        response = _ask(url, CHIT_CHAT)
    assert response.headers["x-triage-route"] == "cloud-large"


def test_low_confidence_uses_the_default_route(fake: FakeUpstreamThread) -> None:
    config = config_from(_config(fake, min_confidence=1.0))
    with serve(create_app(config)) as url:
        response = _ask(url, CODE)
    assert response.headers["x-triage-task"] == "code"
    assert response.headers["x-triage-route"] == "local-small"


def test_operator_examples_adjust_the_classifier(fake: FakeUpstreamThread) -> None:
    prompt = "zorblax the quintessa frobnication ledger"
    examples = {"extraction": [prompt, "zorblax quintessa frobnication", "zorblax ledger"] * 4}
    with serve(create_app(config_from(_config(fake)))) as url:
        before = _ask(url, prompt).headers["x-triage-task"]
    with serve(create_app(config_from(_config(fake, examples=examples)))) as url:
        after = _ask(url, prompt).headers["x-triage-task"]
    assert after == "extraction"
    assert before != "extraction"


def test_explain_decides_without_calling_any_model(gateway: str, fake: FakeUpstreamThread) -> None:
    response = httpx.post(
        gateway + "/v1/triage/explain",
        json={"model": "auto", "messages": [{"role": "user", "content": CODE}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["classification"]["task"] == "code"
    assert abs(sum(body["classification"]["probabilities"].values()) - 1) < 0.01
    assert body["route"]["groups"] == ["local-coder", "cloud-large"]
    assert [c["deployment"] for c in body["candidates"]] == ["local-coder-1", "cloud-large-1"]
    assert float(body["estimated_cost_usd"]) >= 0
    assert fake.requests() == []
