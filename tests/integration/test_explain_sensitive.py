"""/v1/triage/explain tells the truth about sensitive routing: a request the scanner flags is
shown as local-only, with only the deployments it may reach, and as refused when nothing local
is on its route; and what explain says matches what the real request then does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

CARD = "please charge my card 4111 1111 1111 1111 for the order"
PLAIN = "please summarise the order history"


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    base = fake.url + "/v1"
    config = config_from(
        {
            "model_list": [
                deployment("cloud", "openai/gpt-4o", base, params={"api_key": "sk-x"}),
                deployment("local", "hosted_vllm/fake-model", base, local=True),
                deployment("solo", "openai/gpt-4o-mini", base, params={"api_key": "sk-x"}),
            ],
            "router_settings": {"fallbacks": [{"cloud": ["local"]}]},
            "triage": {"default_route": ["cloud", "local"]},
        }
    )
    with serve(create_app(config)) as url:
        yield url


def _body(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def _explain(url: str, model: str, text: str) -> dict[str, Any]:
    response = httpx.post(url + "/v1/triage/explain", json=_body(model, text), timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_sensitive_request_is_explained_as_local_only(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    answer = _explain(gateway, "auto", CARD)
    assert answer["local_only"] is True and answer["sensitive"]
    assert [c["deployment"] for c in answer["candidates"]] == ["local-1"]
    assert all(c["local"] for c in answer["candidates"])
    assert answer["refused"] is None
    assert fake.requests() == []  # explain calls no model
    # The real request goes exactly where explain said.
    real = httpx.post(gateway + "/v1/chat/completions", json=_body("auto", CARD), timeout=30)
    assert real.headers["x-triage-deployment"] == "local-1"
    assert real.headers["x-triage-sensitive"] == "true"


def test_a_plain_request_may_use_every_deployment(gateway: str) -> None:
    answer = _explain(gateway, "auto", PLAIN)
    assert answer["local_only"] is False and answer["sensitive"] == []
    assert {c["deployment"] for c in answer["candidates"]} == {"cloud-1", "local-1"}


def test_a_sensitive_request_with_nothing_local_is_explained_as_refused(gateway: str) -> None:
    answer = _explain(gateway, "solo", CARD)  # a cloud group without fallbacks
    assert answer["candidates"] == [] and answer["estimated_cost_usd"] in ("0", "0.0", "0.00")
    assert answer["refused"]["status"] == 403 and answer["refused"]["code"] == "local_only"
    real = httpx.post(gateway + "/v1/chat/completions", json=_body("solo", CARD), timeout=30)
    assert real.status_code == 403 and real.json()["error"]["code"] == "local_only"


def test_the_explanation_does_not_echo_the_sensitive_text(gateway: str) -> None:
    answer = _explain(gateway, "auto", CARD)
    assert "4111" not in str(answer)
