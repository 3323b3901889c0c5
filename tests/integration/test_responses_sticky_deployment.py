"""Sticky conversations keep their deployment, not only their model group: a group of two
deployments under latency-based routing (which spreads new conversations to the other, faster
one) keeps a conversation's later turns on the deployment that served its first, so the
backend's prefix cache is reused; when that deployment fails or cools down, the turn moves and
the conversation follows it. Real app on a real server, two fake upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

SLOW, FAST = "pool-slow", "pool-fast"


def _config(slow: FakeUpstreamThread, fast: FakeUpstreamThread, tmp: Path, **rs: Any) -> Any:
    slow.configure(latency_ms=40)  # so latency ranks it last once both are measured
    return config_from(
        {
            "model_list": [
                # Listed first, so the very first request (nothing measured yet) lands on it.
                deployment("pool", "hosted_vllm/fake-model", slow.url + "/v1", id=SLOW),
                deployment("pool", "hosted_vllm/fake-small", fast.url + "/v1", id=FAST),
            ],
            "router_settings": {
                "routing_strategy": "latency-based-routing",
                "num_retries": 1,
                **rs,
            },
            "triage": {"ledger": {"enabled": False}, "default_route": ["pool"]},
            "responses": {"path": str(tmp / "responses.db")},
        }
    )


@pytest.fixture
def gateway(fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    with serve(create_app(_config(fake, fake2, tmp_path))) as url:
        yield url


def _post(gateway: str, **body: Any) -> httpx.Response:
    response = httpx.post(gateway + "/v1/responses", json={"model": "auto", **body}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _where(response: httpx.Response) -> str:
    return response.headers["x-triage-deployment"]


def test_a_chain_stays_on_its_deployment_while_new_conversations_go_elsewhere(
    gateway: str,
) -> None:
    first = _post(gateway, input="start a refactoring task")
    assert _where(first) == SLOW
    previous, turns, others = first.json()["id"], [], []
    for n in range(6):
        turn = _post(gateway, input=f"step {n}", previous_response_id=previous)
        previous = turn.json()["id"]
        turns.append(_where(turn))
        assert turn.headers["x-triage-sticky"] == "hit"
        others.append(_where(_post(gateway, input=f"an unrelated question {n}")))
    assert turns == [SLOW] * 6
    # Without the pin the router would have moved it: new conversations went to the other.
    assert others.count(FAST) >= len(others) - 1


def test_a_failing_deployment_moves_the_conversation_and_it_stays_moved(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    first = _post(gateway, input="write a parser", prompt_cache_key="conv-1", store=False)
    assert _where(first) == SLOW
    fake.add_fault(kind="status", status=503)  # the slow deployment's next answer fails
    moved = _post(gateway, input="and tests", prompt_cache_key="conv-1", store=False)
    assert _where(moved) == FAST  # retried on the sibling at once
    assert moved.headers["x-triage-attempts"] == "2"
    # The slow deployment is healthy again, but the conversation's cache is on the fast one now.
    for n in range(3):
        later = _post(gateway, input=f"more {n}", prompt_cache_key="conv-1", store=False)
        assert _where(later) == FAST
        assert later.headers["x-triage-attempts"] == "1"


def test_a_cooling_deployment_is_not_preferred(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    """A pinned deployment that other traffic has put in cooldown gets no sticky turn: the
    turn goes to the healthy sibling with no failed attempt first."""
    config = _config(fake, fake2, tmp_path, allowed_fails=1, cooldown_time=60, num_retries=0)
    with serve(create_app(config)) as url:
        opening = [{"role": "user", "content": "plan a migration"}]
        first = _post(url, input=opening, instructions="agent", store=False)
        assert _where(first) == SLOW
        fake.add_fault(kind="status", status=503)
        # Other traffic (no retries) until the slow deployment's failure cools it down.
        statuses = []
        while 503 not in statuses and len(statuses) < 4:
            body = {"model": "pool", "input": f"other {len(statuses)}"}
            other = httpx.post(url + "/v1/responses", json=body)
            statuses.append(other.status_code)
        assert 503 in statuses
        turn = [*opening, *first.json()["output"], {"role": "user", "content": "go on"}]
        second = _post(url, input=turn, instructions="agent", store=False)
        assert _where(second) == FAST
        assert second.headers["x-triage-attempts"] == "1"


def test_a_named_group_keeps_its_deployment_when_streaming(gateway: str) -> None:
    def turn(text: str, key: str) -> httpx.Response:
        body = {"model": "pool", "input": text, "prompt_cache_key": key, "stream": True}
        with httpx.stream("POST", gateway + "/v1/responses", json=body, timeout=30) as response:
            assert response.status_code == 200
            assert "response.completed" in response.read().decode()
            return response

    first = turn("hello", "named-1")
    assert _where(first) == SLOW and first.headers["x-triage-sticky"] == "new"
    seen = []
    for n in range(4):
        again = turn(f"turn {n}", "named-1")
        assert again.headers["x-triage-sticky"] == "hit"
        seen.append(_where(again))
        turn(f"someone else {n}", f"other-{n}")  # spreads to the fast one
    assert seen == [SLOW] * 4


def test_an_unreachable_deployment_is_not_preferred(
    fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    """The readiness probe found the pinned deployment down: the sticky turn goes straight to
    the sibling instead of spending a failed attempt (and the client's time) on it first."""
    with FakeUpstreamThread() as slow:
        config = _config(slow, fake2, tmp_path)
        with serve(create_app(config)) as url:
            first = _post(url, input="one", prompt_cache_key="conv-down", store=False)
            assert _where(first) == SLOW
            slow.stop()
            assert httpx.get(url + "/health/ready", timeout=30).status_code == 200
            second = _post(url, input="two", prompt_cache_key="conv-down", store=False)
            assert _where(second) == FAST
            assert second.headers["x-triage-attempts"] == "1"


def _message(gateway: str, text: str, session: str) -> httpx.Response:
    body = {
        "model": "auto",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}],
        "metadata": {"user_id": session},
    }
    response = httpx.post(gateway + "/v1/messages", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_a_claude_code_session_stays_on_its_deployment(gateway: str) -> None:
    """The Messages API sticks the same way, by `metadata.user_id` (Claude Code's session)."""
    first = _message(gateway, "start a refactoring task", "session-1")
    assert _where(first) == SLOW
    turns, others = [], []
    for n in range(5):
        turn = _message(gateway, f"step {n}", "session-1")
        assert turn.headers["x-triage-sticky"] == "hit"
        turns.append(_where(turn))
        others.append(_where(_message(gateway, f"an unrelated question {n}", f"other-{n}")))
    assert turns == [SLOW] * 5
    assert others.count(FAST) >= len(others) - 1
