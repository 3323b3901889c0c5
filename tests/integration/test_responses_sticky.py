"""Sticky conversations: once a conversation sent to `auto` is routed, its later turns go to the
same model group (header `x-triage-sticky: hit|new`), found by the previous_response_id chain, by
prompt_cache_key or by the conversation's opening items; failover still moves a turn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

CODE = {"x-triage-task": "code"}
CHAT = {"x-triage-task": "chat"}


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    base = fake.url + "/v1"
    config = config_from(
        {
            "model_list": [
                deployment("coder", "hosted_vllm/coder", base),
                deployment("chatter", "hosted_vllm/chatter", base),
            ],
            "router_settings": {"num_retries": 0, "fallbacks": [{"coder": ["chatter"]}]},
            "triage": {
                "ledger": {"enabled": False},
                "default_route": ["chatter"],
                "routes": {"code": ["coder"], "chat": ["chatter"]},
            },
            "responses": {"path": str(tmp_path / "responses.db")},
        }
    )
    with serve(create_app(config)) as url:
        yield url


def _post(gateway: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    response = httpx.post(
        gateway + "/v1/responses", json={"model": "auto", **body}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response


def test_previous_response_chain_sticks_to_the_first_group(gateway: str) -> None:
    first = _post(gateway, CODE, input="write a sort function")
    assert first.headers["x-triage-route"] == "coder"
    assert first.headers["x-triage-sticky"] == "new"
    # The next turn alone would be classified as chat: the chain keeps it on the coder.
    second = _post(gateway, CHAT, input="thanks!", previous_response_id=first.json()["id"])
    assert second.headers["x-triage-route"] == "coder"
    assert second.headers["x-triage-sticky"] == "hit"
    assert second.json()["model"] == "auto"


def test_prompt_cache_key_sticks_without_storage(gateway: str) -> None:
    first = _post(gateway, CODE, input="fix this bug", prompt_cache_key="conv-7", store=False)
    second = _post(gateway, CHAT, input="hello again", prompt_cache_key="conv-7", store=False)
    other = _post(gateway, CHAT, input="hello again", prompt_cache_key="conv-8", store=False)
    assert first.headers["x-triage-route"] == second.headers["x-triage-route"] == "coder"
    assert second.headers["x-triage-sticky"] == "hit"
    assert other.headers["x-triage-route"] == "chatter"
    assert other.headers["x-triage-sticky"] == "new"


def test_resent_conversation_sticks_by_its_opening_items(gateway: str) -> None:
    opening = [{"role": "user", "content": "refactor my parser"}]
    first = _post(gateway, CODE, input=opening, instructions="you are an agent", store=False)
    assistant = first.json()["output"]
    turn = [*opening, *assistant, {"role": "user", "content": "ok"}]
    second = _post(gateway, CHAT, input=turn, instructions="you are an agent", store=False)
    assert second.headers["x-triage-route"] == "coder"
    assert second.headers["x-triage-sticky"] == "hit"


def test_a_failing_sticky_group_still_fails_over(gateway: str, fake: FakeUpstreamThread) -> None:
    first = _post(gateway, CODE, input="write a parser", prompt_cache_key="c1")
    assert first.headers["x-triage-route"] == "coder"
    fake.add_fault(kind="status", status=503)
    moved = _post(gateway, CODE, input="and tests", prompt_cache_key="c1")
    assert moved.headers["x-triage-sticky"] == "hit"
    assert moved.headers["x-triage-route"] == "chatter"  # the fallback served it
    after = _post(gateway, CODE, input="and docs", prompt_cache_key="c1")
    assert after.headers["x-triage-route"] == "chatter"  # and the conversation follows it


def test_a_named_group_is_never_redirected(gateway: str) -> None:
    first = _post(gateway, CODE, input="write code", prompt_cache_key="c2")
    named = httpx.post(
        gateway + "/v1/responses",
        json={"model": "chatter", "input": "x", "prompt_cache_key": "c2"},
    )
    assert named.headers["x-triage-route"] == "chatter"
    assert named.headers["x-triage-sticky"] == "new"
    assert first.headers["x-triage-route"] == "coder"
