"""Two Triage replicas on one real Valkey server (`state.backend: redis`): one budget, one rpm
and one tpm across both under 50 concurrent requests, a cooldown one replica trips is honoured by
the other, a conversation started on one is continued on the other, and a store killed
mid-traffic (fail-closed keys 503, fail-open keys served) and restarted (both recover without a
restart of their own).

Each replica is its own `create_app` under its own uvicorn server and event loop: they share
nothing but the store (and the fake upstream). Prices make each request's cost exact: output
tokens cost $0.0001 each and the fake answers with exactly `OUT` of them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import config_from, deployment, serve
from tests.integration.test_process import _serve
from tests.redis_server import ValkeyServer
from triage.api import create_app
from triage.config.schema import Config
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

pytestmark = pytest.mark.scale

KEY, OPEN_KEY, ADMIN = "tk-team-0123456789", "tk-open-0123456789", "ak-admin-0123456789"
ENV = {"TEAM_KEY": KEY, "OPEN_KEY": OPEN_KEY, "ADMIN_KEY": ADMIN}
PER_TOKEN = Decimal("0.0001")
OUT = 10
ONE = PER_TOKEN * OUT
MSG = [{"role": "user", "content": "hello"}]


def _config(
    fake: FakeUpstreamThread,
    url: str,
    key: Mapping[str, Any],
    ledger: Path | None = None,
    hold: int | None = None,
    **extra: Any,
) -> Config:
    priced = {"input_cost_per_token": "0", "output_cost_per_token": str(PER_TOKEN)}
    keys = [{"id": "team", "key": "os.environ/TEAM_KEY", **key}]
    keys.append({"id": "open", "key": "os.environ/OPEN_KEY", "rpm": 1000})
    data: dict[str, Any] = {
        "model_list": extra.pop(
            "model_list",
            [
                deployment("cloud", "openai/gpt-4o", fake.url + "/v1", params=priced),
                deployment("local", "hosted_vllm/small", fake.url + "/v1", local=True),
            ],
        ),
        "auth": {
            "keys": keys,
            "admin_key": "os.environ/ADMIN_KEY",
            **({"reserve_output_tokens": hold} if hold is not None else {}),
        },
        "state": {"backend": "redis", "url": "os.environ/STATE_URL", "timeout": 2},
        "triage": {
            "ledger": {"path": str(ledger)} if ledger else {"enabled": False},
            **extra.pop("triage", {}),
        },
        **extra,
    }
    return config_from(data, {**ENV, "STATE_URL": url})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A Valkey server of this test's own (some tests kill it)."""
    (tmp_path / "valkey").mkdir()
    with ValkeyServer(tmp_path / "valkey") as server:
        yield server


@pytest.fixture
def slow_fake(fake: FakeUpstreamThread) -> FakeUpstreamThread:
    fake.configure(latency_ms=300, completion_tokens=OUT, ttft_ms=300)  # all 50 in flight
    return fake


def _replicas(*configs: Config) -> tuple[ExitStack, list[str]]:
    stack = ExitStack()
    return stack, [stack.enter_context(serve(create_app(c))) for c in configs]


async def _burst(urls: list[str], count: int, body: Mapping[str, Any], key: str = KEY) -> list[int]:
    """`count` requests at once, dealt round-robin over the replicas."""
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(url: str) -> int:
            response = await client.post(url + "/v1/chat/completions", json=body, headers=headers)
            return response.status_code

        targets = itertools.islice(itertools.cycle(urls), count)
        return list(await asyncio.gather(*(one(url) for url in targets)))


def test_two_replicas_spend_one_budget(
    slow_fake: FakeUpstreamThread, store: ValkeyServer, tmp_path: Path
) -> None:
    budget = ONE * 6 + ONE / 2  # worth six requests and a half
    key = {"budget": {"daily_usd": str(budget)}}
    ledgers = [tmp_path / "a.db", tmp_path / "b.db"]
    configs = [_config(slow_fake, store.url, key, ledger) for ledger in ledgers]
    body = {"model": "cloud", "messages": MSG, "max_tokens": OUT}
    stack, urls = _replicas(*configs)
    with stack:
        statuses = asyncio.run(_burst(urls, 50, body))
    assert statuses.count(200) == 6 and statuses.count(429) == 44
    assert len(slow_fake.requests()) == 6
    spent = Decimal(0)
    for path in ledgers:
        with Ledger(path) as ledger:
            spent += ledger.spend("team", 0.0)
    assert spent == ONE * 6 <= budget  # 0 overshoot with max_tokens set


def test_two_replicas_without_max_tokens_stay_within_one_budget(
    slow_fake: FakeUpstreamThread, store: ValkeyServer, tmp_path: Path
) -> None:
    """No `max_tokens`: each request holds `auth.reserve_output_tokens` (16 here; the fake
    answers 10) and settles to what it used. Waves of 50 concurrent requests over both replicas
    until the budget refuses: spend within 1% of it, and the budget was used, not refused from
    the start by the holds."""
    budget = ONE * 6 + ONE / 2
    key = {"budget": {"daily_usd": str(budget)}}
    ledgers = [tmp_path / "a.db", tmp_path / "b.db"]
    configs = [_config(slow_fake, store.url, key, ledger, hold=16) for ledger in ledgers]
    body = {"model": "cloud", "messages": MSG}
    served = 0
    stack, urls = _replicas(*configs)
    with stack:
        for _ in range(4):
            statuses = asyncio.run(_burst(urls, 50, body))
            assert set(statuses) <= {200, 429}
            served += statuses.count(200)
    assert len(slow_fake.requests()) == served >= 5
    spent = Decimal(0)
    for path in ledgers:
        with Ledger(path) as ledger:
            spent += ledger.spend("team", 0.0)
    assert spent == ONE * served
    assert spent <= budget * Decimal("1.01")


@pytest.mark.parametrize("limit", ["rpm", "tpm"])
def test_two_replicas_share_one_rpm_and_tpm(
    slow_fake: FakeUpstreamThread, store: ValkeyServer, limit: str
) -> None:
    if limit == "rpm":
        key: dict[str, Any] = {"rpm": 10}
        body: dict[str, Any] = {"model": "local", "messages": MSG}
        allowed = 10
    else:
        key = {"tpm": 2100}  # 510 tokens a request: four fit
        prompt = [{"role": "user", "content": "word " * 400}]
        body = {"model": "local", "messages": prompt, "max_tokens": OUT}
        allowed = 4
    configs = [_config(slow_fake, store.url, key) for _ in range(2)]
    stack, urls = _replicas(*configs)
    with stack:
        statuses = asyncio.run(_burst(urls, 50, body))
    assert statuses.count(200) == allowed  # not `allowed` per replica
    assert statuses.count(429) == 50 - allowed


def test_a_cooldown_tripped_by_one_replica_is_honoured_by_the_other(
    fake: FakeUpstreamThread, store: ValkeyServer
) -> None:
    base = fake.url + "/v1"
    extra = {
        "model_list": [
            deployment("chat", "hosted_vllm/fail-500", base),
            deployment("chat", "hosted_vllm/good", base),
        ],
        "router_settings": {"num_retries": 1, "allowed_fails": 1, "cooldown_time": 120},
    }
    configs = [_config(fake, store.url, {}, **extra) for _ in range(2)]
    headers = {"authorization": f"Bearer {OPEN_KEY}"}
    body = {"model": "chat", "messages": MSG}
    stack, (first, second) = _replicas(*configs)
    with stack:
        for _ in range(20):  # until the first replica has tried the failing one
            assert httpx.post(first + "/v1/chat/completions", json=body, headers=headers)
            if any(r.json["model"] == "fail-500" for r in fake.requests()):
                break
        tried = len(fake.requests())
        statuses = [
            httpx.post(second + "/v1/chat/completions", json=body, headers=headers).status_code
            for _ in range(12)
        ]
    later = [r.json["model"] for r in fake.requests()[tried:]]
    assert statuses == [200] * 12
    assert later == ["good"] * 12  # never the deployment the first replica cooled down


def test_a_conversation_pinned_by_one_replica_is_continued_by_the_other(
    fake: FakeUpstreamThread, store: ValkeyServer
) -> None:
    base = fake.url + "/v1"
    extra = {
        "model_list": [
            deployment("coder", "hosted_vllm/coder", base),
            deployment("chatter", "hosted_vllm/chatter", base),
        ],
        "triage": {
            "default_route": ["chatter"],
            "routes": {"code": ["coder"], "chat": ["chatter"]},
        },
    }
    configs = [_config(fake, store.url, {}, **extra) for _ in range(2)]
    headers = {"authorization": f"Bearer {OPEN_KEY}"}

    def post(url: str, task: str, **body: Any) -> httpx.Response:
        response = httpx.post(
            url + "/v1/responses",
            json={"model": "auto", **body},
            headers={**headers, "x-triage-task": task},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response

    stack, (first, second) = _replicas(*configs)
    with stack:
        opened = post(first, "code", input="write a sort function", prompt_cache_key="conv-1")
        by_key = post(second, "chat", input="and now?", prompt_cache_key="conv-1")
        chained = post(second, "chat", input="thanks", previous_response_id=opened.json()["id"])
        fetched = httpx.get(second + f"/v1/responses/{opened.json()['id']}", headers=headers)
    assert opened.headers["x-triage-route"] == "coder"
    assert by_key.headers["x-triage-route"] == "coder"
    assert by_key.headers["x-triage-sticky"] == "hit"
    assert chained.headers["x-triage-route"] == "coder"
    assert fetched.status_code == 200 and fetched.json()["id"] == opened.json()["id"]


def test_store_killed_mid_traffic_then_restarted(
    fake: FakeUpstreamThread, store: ValkeyServer
) -> None:
    key = {"budget": {"daily_usd": "100"}}  # a budget: fails closed by default
    configs = [_config(fake, store.url, key) for _ in range(2)]
    body = {"model": "local", "messages": MSG, "max_tokens": OUT}
    stack, urls = _replicas(*configs)
    with stack:
        before = asyncio.run(_burst(urls, 10, body))
        team = {"authorization": f"Bearer {KEY}"}
        turn = {"model": "local", "input": "hi", "max_output_tokens": OUT}
        kept = httpx.post(urls[0] + "/v1/responses", json=turn, headers=team).json()["id"]
        store.stop()
        unreadable = httpx.get(urls[1] + f"/v1/responses/{kept}", headers=team)
        closed = [asyncio.run(_burst(urls, 10, body)), asyncio.run(_burst(urls, 10, body))]
        opened = asyncio.run(_burst(urls, 10, body, key=OPEN_KEY))
        refused = httpx.post(
            urls[0] + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
        )
        admin = {"authorization": f"Bearer {ADMIN}"}
        metrics = httpx.get(urls[0] + "/metrics", headers=admin).text
        store.start()
        after = asyncio.run(_burst(urls, 10, body))
        after_open = asyncio.run(_burst(urls, 10, body, key=OPEN_KEY))
    assert before == [200] * 10
    assert closed == [[503] * 10] * 2
    assert unreadable.status_code == 503
    assert unreadable.json()["error"]["code"] == "state_store_unavailable"
    error = refused.json()["error"]
    assert refused.status_code == 503 and error["code"] == "state_store_unavailable"
    assert refused.headers["retry-after"] == "1"
    assert "127.0.0.1" not in refused.text and str(store.port) not in refused.text
    assert opened == [200] * 10  # a key without a budget fails open
    assert 'triage_state_store_failures_total{operation="reserve",policy="fail_closed"}' in metrics
    assert 'triage_state_store_failures_total{operation="reserve",policy="fail_open"}' in metrics
    assert after == [200] * 10 and after_open == [200] * 10  # recovered, no restart


def test_two_serve_processes_share_one_budget_and_rpm(
    slow_fake: FakeUpstreamThread, store: ValkeyServer, tmp_path: Path
) -> None:
    """Two real `triage serve` processes, each with its own ledger, on one store."""
    budget = ONE * 6 + ONE / 2
    key = {"rpm": 8, "budget": {"daily_usd": str(budget)}}
    paths = []
    for name in ("a", "b"):
        config = _config(slow_fake, store.url, key, tmp_path / f"{name}.db")
        data = config.model_dump(mode="json", exclude_none=True)
        data["auth"] = {
            "admin_key": "os.environ/ADMIN_KEY",
            "keys": [
                {"id": "team", "key": "os.environ/TEAM_KEY", **key},
                {"id": "open", "key": "os.environ/OPEN_KEY", "rpm": 1000},
            ],
        }
        data["state"] = {"backend": "redis", "url": "os.environ/STATE_URL"}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        paths.append(path)
    env = {**os.environ, **ENV, "STATE_URL": store.url, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    body = {"model": "cloud", "messages": MSG, "max_tokens": OUT}
    with _serve(paths[0], env) as (first, _), _serve(paths[1], env) as (second, _):
        statuses = asyncio.run(_burst([first, second], 50, body))
        admin = {"authorization": f"Bearer {ADMIN}"}
        views = [httpx.get(u + "/admin/keys", headers=admin).json() for u in (first, second)]
    assert statuses.count(200) == 6 and statuses.count(429) == 44
    assert len(slow_fake.requests()) == 6
    team = [next(k for k in view["data"] if k["id"] == "team") for view in views]
    assert team[0]["spend"] == team[1]["spend"]  # both replicas read one set of counters
    assert Decimal(team[0]["spend"]["today_usd"]) == ONE * 6
    assert team[0]["requests_last_minute"] == 6
