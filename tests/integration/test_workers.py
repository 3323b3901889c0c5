"""`triage serve --workers 2` as a real multi-process server: one set of limits and budgets for
the machine, and the same numbers on /admin/keys from every worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.test_process import _serve
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

KEY = "tk-team-0123456789"
ADMIN = "ak-admin-0123456789"
PER_TOKEN = Decimal("0.0001")
OUT = 10


def _config(tmp: Path, fake: FakeUpstreamThread, key: dict[str, Any], state: bool) -> Path:
    priced = {"input_cost_per_token": "0", "output_cost_per_token": str(PER_TOKEN)}
    data: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "cloud",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": fake.url + "/v1",
                    **priced,
                },
            }
        ],
        "auth": {
            "admin_key": "os.environ/ADMIN_KEY",
            "keys": [{"id": "team", "key": "os.environ/TEAM_KEY", **key}],
        },
        "triage": {"ledger": {"path": str(tmp / "ledger.db")}},
        "server": {"log_level": "warning"},
    }
    if state:
        data["state"] = {"backend": "sqlite", "path": str(tmp / "state.db")}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "TEAM_KEY": KEY,
        "ADMIN_KEY": ADMIN,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


@pytest.fixture
def two_workers(tmp_path: Path, fake: FakeUpstreamThread) -> Iterator[tuple[str, Path]]:
    fake.configure(latency_ms=300, completion_tokens=OUT)
    key = {"rpm": 10, "budget": {"daily_usd": str(PER_TOKEN * OUT * 6 + PER_TOKEN)}}
    config = _config(tmp_path, fake, key, state=True)
    with _serve(config, _env(), "--workers", "2") as (url, _):
        yield url, tmp_path


async def _burst(url: str, count: int) -> list[int]:
    body = {"model": "cloud", "messages": [{"role": "user", "content": "hi"}], "max_tokens": OUT}
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as c:
        responses = await asyncio.gather(
            *(
                c.post(url + "/v1/chat/completions", json=body, headers=headers)
                for _ in range(count)
            )
        )
    return [r.status_code for r in responses]


def test_two_workers_enforce_one_budget(
    two_workers: tuple[str, Path], fake: FakeUpstreamThread
) -> None:
    url, tmp = two_workers
    statuses = asyncio.run(_burst(url, 50))
    assert statuses.count(200) == 6  # the budget is worth six, rpm would allow ten
    assert len(fake.requests()) == 6
    with Ledger(tmp / "ledger.db") as ledger:
        assert ledger.spend("team", 0.0) == PER_TOKEN * OUT * 6
    admin = {"authorization": f"Bearer {ADMIN}"}
    seen = set()
    for _ in range(8):  # new connections: each may land on either worker
        with httpx.Client() as client:
            row = client.get(url + "/admin/keys", headers=admin).json()["data"][0]
        seen.add((row["spend"]["today_usd"], row["requests_last_minute"]))
    assert seen == {(str(PER_TOKEN * OUT * 6), 6)}


def test_memory_state_with_limits_refuses_several_workers(
    tmp_path: Path, fake: FakeUpstreamThread
) -> None:
    config = _config(tmp_path, fake, {"rpm": 10}, state=False)
    result = subprocess.run(
        [sys.executable, "-m", "triage.cli", "serve", "--config", str(config), "--workers", "2"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "state: {backend: sqlite" in result.stderr
