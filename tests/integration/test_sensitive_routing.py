"""Sensitive data stays on local deployments: planted PII in any turn never reaches a cloud fake."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from tests.sensitive_cases import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    PER_DETECTOR,
    PLACES,
    SPELLINGS,
    TOKEN_ID_BODIES,
    Body,
)
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


# The planted suite (tests/sensitive_cases.py) through the real app: every field path with one
# everyday spelling per detector, and every spelling in a message. Each must reach the local
# deployment and never the cloud one; the same bodies without the secret must go to the cloud.

ENDPOINTS = {
    CHAT: "/v1/chat/completions",
    COMPLETIONS: "/v1/completions",
    EMBEDDINGS: "/v1/embeddings",
}


@pytest.fixture(scope="module")
def planted() -> Iterator[tuple[str, FakeUpstreamThread, FakeUpstreamThread]]:
    with (
        FakeUpstreamThread() as local,
        FakeUpstreamThread() as cloud,
        serve(create_app(_config(local, cloud))) as url,
    ):
        yield url, local, cloud


def _routed(
    planted: tuple[str, FakeUpstreamThread, FakeUpstreamThread], endpoint: str, body: Body
) -> str:
    """Where the request went: "local", "cloud" or "refused"; the fakes must agree."""
    url, local, cloud = planted
    local.clear()
    cloud.clear()
    response = httpx.post(url + ENDPOINTS[endpoint], json={"model": "cloud", **body}, timeout=30)
    assert response.status_code == 200, response.text
    seen = {"local": len(local.requests()), "cloud": len(cloud.requests())}
    route = response.headers["x-triage-route"]
    assert seen[route] == 1 and sum(seen.values()) == 1, (route, seen)
    return route


@pytest.mark.parametrize(("endpoint", "place", "build"), PLACES, ids=[p[1] for p in PLACES])
@pytest.mark.parametrize("kind", PER_DETECTOR)
def test_planted_secret_in_any_field_stays_local(
    planted: tuple[str, FakeUpstreamThread, FakeUpstreamThread],
    kind: str,
    endpoint: str,
    place: str,
    build: Callable[[str], Body],
) -> None:
    secret = PER_DETECTOR[kind]
    route = _routed(planted, endpoint, build(secret))
    if place.startswith("unknown message key"):
        # Keys outside the OpenAI message schema are dropped before the body leaves (the
        # nested allow-list), so the secret reaches no upstream, local or cloud.
        _, local, cloud = planted
        sent = [json.dumps(r.json) for r in [*local.requests(), *cloud.requests()]]
        assert sent and not any(secret in text for text in sent)
    else:
        assert route == "local"
    assert _routed(planted, endpoint, build("nothing to see here")) == "cloud"


@pytest.mark.parametrize(("kind", "text"), SPELLINGS, ids=[s[:24] for _, s in SPELLINGS])
def test_everyday_spellings_stay_local(
    planted: tuple[str, FakeUpstreamThread, FakeUpstreamThread], kind: str, text: str
) -> None:
    body = {"messages": [{"role": "user", "content": f"For the record: {text}"}]}
    assert _routed(planted, CHAT, body) == "local"


@pytest.mark.parametrize(("endpoint", "body"), TOKEN_ID_BODIES)
def test_token_id_inputs_stay_local(
    planted: tuple[str, FakeUpstreamThread, FakeUpstreamThread], endpoint: str, body: Body
) -> None:
    assert _routed(planted, endpoint, body) == "local"


def test_a_secret_in_the_middle_of_a_long_message_stays_local(
    planted: tuple[str, FakeUpstreamThread, FakeUpstreamThread],
) -> None:
    filler = "lorem ipsum dolor sit amet " * 4000  # about 108 KB per side: scanned off the loop
    body = {"messages": [{"role": "user", "content": f"{filler} 4111 1111 1111 1111 {filler}"}]}
    assert _routed(planted, CHAT, body) == "local"
