"""Sensitive data stays on local deployments: planted PII in any turn never reaches a cloud fake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@corp-mail.net"

LAST_TURN = [{"role": "user", "content": f"Charge my card {CARD} for the order."}]
EARLIER_TURN = [
    {"role": "user", "content": f"My address is {EMAIL}."},
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": "Now write me a haiku about autumn."},
]
TOOL_RESULT = [
    {"role": "user", "content": "Look up the customer."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": f'{{"email": "{EMAIL}"}}'},
]

# Planted in what the assistant asked a tool to do, and in the deprecated single function call.
TOOL_ARGUMENTS = [
    {"role": "user", "content": "Email the customer."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "send", "arguments": f'{{"to": "{EMAIL}"}}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
]
FUNCTION_CALL = [
    {"role": "user", "content": "Bill the customer."},
    {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "bill", "arguments": f'{{"card": "{CARD}"}}'},
    },
    {"role": "user", "content": "Thanks, anything else?"},
]


@pytest.fixture
def cloud(fake2: FakeUpstreamThread) -> FakeUpstreamThread:
    return fake2


def _config(local: FakeUpstreamThread, cloud: FakeUpstreamThread, **triage: Any) -> Any:
    return config_from(
        {
            "model_list": [
                deployment("cloud", "openai/gpt-4o", cloud.url + "/v1", params={"api_key": "k"}),
                deployment("local", "hosted_vllm/small", local.url + "/v1", local=True),
            ],
            "router_settings": {"fallbacks": [{"cloud": ["local"]}]},
            "triage": {"default_route": ["cloud", "local"], "ledger": {"enabled": False}, **triage},
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, cloud: FakeUpstreamThread) -> Iterator[str]:
    with serve(create_app(_config(fake, cloud))) as url:
        yield url


@pytest.mark.parametrize(
    "messages",
    [LAST_TURN, EARLIER_TURN, TOOL_RESULT, TOOL_ARGUMENTS, FUNCTION_CALL],
    ids=["last-turn", "earlier-turn", "tool-result", "tool-arguments", "function-call"],
)
@pytest.mark.parametrize("model", ["auto", "cloud"])
def test_planted_pii_never_reaches_a_cloud_deployment(
    gateway: str,
    fake: FakeUpstreamThread,
    cloud: FakeUpstreamThread,
    messages: list[dict[str, Any]],
    model: str,
) -> None:
    response = httpx.post(
        gateway + "/v1/chat/completions", json={"model": model, "messages": messages}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-triage-sensitive"] == "true"
    assert response.headers["x-triage-route"] == "local"
    assert cloud.requests() == []
    assert len(fake.requests()) == 1


def test_clean_requests_are_not_marked(gateway: str, cloud: FakeUpstreamThread) -> None:
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={
            "model": "cloud",
            "messages": [{"role": "user", "content": "Write a haiku about rain."}],
        },
    )
    assert response.headers["x-triage-sensitive"] == "false"
    assert response.headers["x-triage-route"] == "cloud"
    assert len(cloud.requests()) == 1


def test_sensitive_request_without_a_local_deployment_is_refused(
    fake: FakeUpstreamThread, cloud: FakeUpstreamThread
) -> None:
    config = config_from(
        {
            "model_list": [deployment("cloud", "openai/gpt-4o", cloud.url + "/v1")],
            "triage": {"ledger": {"enabled": False}},
        }
    )
    with serve(create_app(config)) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "cloud", "messages": LAST_TURN}
        )
        metrics = httpx.get(url + "/metrics").text
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert cloud.requests() == []
    assert 'triage_sensitive_requests_total{detector="card"} 1.0' in metrics
    assert CARD not in metrics


def test_operator_patterns_and_embeddings_are_covered(
    fake: FakeUpstreamThread, cloud: FakeUpstreamThread
) -> None:
    config = _config(fake, cloud, sensitive={"patterns": {"project": r"PROJECT-[A-Z]{4}\d{2}"}})
    with serve(create_app(config)) as url:
        chat = httpx.post(
            url + "/v1/chat/completions",
            json={
                "model": "cloud",
                "messages": [{"role": "user", "content": "Status of PROJECT-ZEUS42?"}],
            },
        )
        emb = httpx.post(url + "/v1/embeddings", json={"model": "cloud", "input": [EMAIL]})
    assert chat.headers["x-triage-route"] == "local"
    assert emb.status_code == 200 and emb.headers["x-triage-route"] == "local"
    assert cloud.requests() == []
