"""Money and limits under concurrency: every request reserves its worst case before the upstream
call, so 50 concurrent requests cannot spend past a budget or a per-minute limit.

Prices are set per deployment so that a request's cost is exact: input is free and each output
token costs $0.0001; the fake answers with exactly `completion_tokens` tokens per choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

KEY = "tk-team-0123456789"
ADMIN = "ak-admin-0123456789"
ENV = {"TEAM_KEY": KEY, "ADMIN_KEY": ADMIN}
PER_TOKEN = Decimal("0.0001")
OUT = 10  # output tokens per choice: max_tokens and what the fake produces
ONE = PER_TOKEN * OUT  # the cost of one request of one choice
MSG = [{"role": "user", "content": "hello"}]


def _config(fake: FakeUpstreamThread, tmp_path: Path, key: Mapping[str, Any], **extra: Any) -> Any:
    priced = {"input_cost_per_token": "0", "output_cost_per_token": str(PER_TOKEN)}
    data: dict[str, Any] = {
        "model_list": [
            deployment("cloud", "openai/gpt-4o", fake.url + "/v1", params=priced),
            deployment("local", "hosted_vllm/small", fake.url + "/v1", local=True),
        ],
        "auth": {
            "admin_key": "os.environ/ADMIN_KEY",
            "keys": [{"id": "team", "key": "os.environ/TEAM_KEY", **key}],
            **extra.pop("auth", {}),
        },
        "triage": {"ledger": {"path": str(tmp_path / "ledger.db")}},
        **extra,
    }
    return config_from(data, ENV)


async def _burst(url: str, count: int, body: Mapping[str, Any]) -> list[int]:
    """`count` requests at once; the status of each (a stream is read to its end)."""
    headers = {"authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one() -> int:
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, headers=headers
            ) as response:
                text = (await response.aread()).decode()
                if response.status_code == 200 and body.get("stream"):
                    assert text.rstrip().endswith("data: [DONE]")
                return response.status_code

        return list(await asyncio.gather(*(one() for _ in range(count))))


def _spent(tmp_path: Path) -> Decimal:
    with Ledger(tmp_path / "ledger.db") as ledger:
        return ledger.spend("team", 0.0)


@pytest.fixture
def slow_fake(fake: FakeUpstreamThread) -> FakeUpstreamThread:
    # Slow enough that all 50 requests are in flight together.
    fake.configure(latency_ms=300, completion_tokens=OUT, ttft_ms=300)
    return fake


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("cap", ["max_tokens", "configured_cap"])
def test_fifty_concurrent_requests_cannot_overspend_a_budget(
    slow_fake: FakeUpstreamThread, tmp_path: Path, stream: bool, cap: str
) -> None:
    budget = ONE * 6 + ONE / 2  # worth six requests and a half
    extra: dict[str, Any] = {}
    body: dict[str, Any] = {"model": "cloud", "messages": MSG, "stream": stream}
    if cap == "max_tokens":
        body["max_tokens"] = OUT
    else:  # no max_tokens: the reservation holds auth.reserve_output_tokens
        extra["auth"] = {"reserve_output_tokens": OUT}
    config = _config(slow_fake, tmp_path, {"budget": {"daily_usd": str(budget)}}, **extra)
    with serve(create_app(config)) as url:
        statuses = asyncio.run(_burst(url, 50, body))
    assert statuses.count(200) == 6
    assert statuses.count(429) == 44
    assert len(slow_fake.requests()) == 6
    assert _spent(tmp_path) == ONE * 6 <= budget


def test_n_multiplies_what_a_request_reserves(
    slow_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    budget = ONE * 6 + ONE / 2
    config = _config(slow_fake, tmp_path, {"budget": {"daily_usd": str(budget)}})
    body = {"model": "cloud", "messages": MSG, "max_tokens": OUT, "n": 3}
    with serve(create_app(config)) as url:
        statuses = asyncio.run(_burst(url, 20, body))
        huge = httpx.post(
            url + "/v1/chat/completions",
            json={**body, "n": 128},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert statuses.count(200) == 2  # 3 choices each: two requests are worth six
    assert huge.status_code == 429 and huge.json()["error"]["code"] == "budget_exceeded"
    assert _spent(tmp_path) == ONE * 6 <= budget


def test_tpm_counts_tokens_in_flight(slow_fake: FakeUpstreamThread, tmp_path: Path) -> None:
    config = _config(slow_fake, tmp_path, {"tpm": 1000})
    prompt = [{"role": "user", "content": "word " * 400}]  # 2,000 characters: 500 tokens
    body = {"model": "local", "messages": prompt, "max_tokens": OUT}
    with serve(create_app(config)) as url:
        statuses = asyncio.run(_burst(url, 50, body))
    assert statuses.count(200) == 1  # 510 tokens each: a second does not fit in 1,000
    assert len(slow_fake.requests()) == 1


def test_a_request_larger_than_tpm_is_refused_and_says_so(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    config = _config(fake, tmp_path, {"tpm": 100})
    prompt = [{"role": "user", "content": "x" * 80_000}]  # 20,000 tokens
    with serve(create_app(config)) as url:
        response = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "local", "messages": prompt, "max_tokens": 5},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "tokens_per_minute_exceeded"
    assert "more than key `team`'s limit of 100 tokens per minute" in error["message"]
    assert fake.requests() == []


def test_rpm_holds_under_concurrency(slow_fake: FakeUpstreamThread, tmp_path: Path) -> None:
    config = _config(slow_fake, tmp_path, {"rpm": 10})
    with serve(create_app(config)) as url:
        statuses = asyncio.run(_burst(url, 50, {"model": "local", "messages": MSG}))
    assert statuses.count(200) == 10
    assert len(slow_fake.requests()) == 10


def test_a_zero_budget_means_nothing_may_be_spent(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    config = _config(fake, tmp_path, {"budget": {"daily_usd": "0"}})
    headers = {"authorization": f"Bearer {KEY}"}
    with serve(create_app(config)) as url:
        paid = [
            httpx.post(
                url + "/v1/chat/completions",
                json={"model": "cloud", "messages": MSG, "max_tokens": OUT},
                headers=headers,
            ).status_code
            for _ in range(5)
        ]
        free = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "local", "messages": MSG, "max_tokens": OUT},
            headers=headers,
        )
    assert paid == [429] * 5
    assert free.status_code == 200  # a free local model costs nothing against $0
    assert [r.json["model"] for r in fake.requests()] == ["small"]


def test_a_request_refused_for_its_budget_uses_no_rpm_slot(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    config = _config(fake, tmp_path, {"rpm": 2, "budget": {"daily_usd": "0"}})
    headers = {"authorization": f"Bearer {KEY}"}
    with serve(create_app(config)) as url:

        def post(model: str) -> int:
            body = {"model": model, "messages": MSG, "max_tokens": OUT}
            return httpx.post(url + "/v1/chat/completions", json=body, headers=headers).status_code

        refused = [post("cloud") for _ in range(3)]
        served = [post("local") for _ in range(2)]
        third = post("local")
    assert refused == [429] * 3
    assert served == [200, 200]
    assert third == 429  # now the rpm limit is what refuses


def test_admin_keys_shows_what_is_held_and_spent(
    slow_fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    config = _config(slow_fake, tmp_path, {"budget": {"daily_usd": "1"}})
    admin = {"authorization": f"Bearer {ADMIN}"}

    async def during(url: str) -> dict[str, Any]:
        burst = asyncio.ensure_future(
            _burst(url, 3, {"model": "cloud", "messages": MSG, "max_tokens": OUT})
        )
        await asyncio.sleep(0.15)
        async with httpx.AsyncClient() as client:
            keys = (await client.get(url + "/admin/keys", headers=admin)).json()
        await burst
        return dict(keys["data"][0])

    with serve(create_app(config)) as url:
        held = asyncio.run(during(url))
        after = httpx.get(url + "/admin/keys", headers=admin).json()["data"][0]
    assert held["in_flight"] == 3 and Decimal(held["spend"]["reserved_usd"]) == ONE * 3
    assert Decimal(after["spend"]["today_usd"]) == ONE * 3
    assert after["in_flight"] == 0 and Decimal(after["spend"]["reserved_usd"]) == 0
