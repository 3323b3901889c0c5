"""The money-and-access scenarios of issue 17, measured against the real app over HTTP.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python bench/limits_figures.py

Each line is one scenario from the issue with what happened: requests served, what reached the
upstream, and the spend the ledger holds. Prices are set per deployment (output $0.0001 a token,
input free) so that a request of 15 output tokens costs exactly $0.0015, as in the issue.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import config_from, deployment, serve  # noqa: E402

from triage.api import create_app  # noqa: E402
from triage.fakeupstream import FakeUpstreamThread  # noqa: E402
from triage.ledger import Ledger  # noqa: E402

KEY = "tk-team-0123456789"
PRICED = {"input_cost_per_token": "0", "output_cost_per_token": "0.0001"}
MSG = [{"role": "user", "content": "hello"}]


def _app(fake: FakeUpstreamThread, ledger: Path, key: dict[str, Any], **extra: Any) -> Any:
    data: dict[str, Any] = {
        "model_list": [
            deployment("cloud", "openai/gpt-4o", fake.url + "/v1", params=PRICED),
            deployment("local", "hosted_vllm/small", fake.url + "/v1", local=True),
        ],
        "auth": {"keys": [{"id": "team", "key": "os.environ/K", **key}]},
        "triage": {"ledger": {"path": str(ledger)}},
        **extra,
    }
    return create_app(config_from(data, {"K": KEY}))


async def _burst(url: str, count: int, body: dict[str, Any]) -> list[int]:
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as c:

        async def one() -> int:
            async with c.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers
            ) as r:
                await r.aread()
                return r.status_code

        return list(await asyncio.gather(*(one() for _ in range(count))))


def scenario(name: str, key: dict[str, Any], body: dict[str, Any], count: int = 50) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeUpstreamThread() as fake:
        fake.configure(latency_ms=300, ttft_ms=300, completion_tokens=15)
        ledger = Path(tmp) / "ledger.db"
        with serve(_app(fake, ledger, key)) as url:
            statuses = asyncio.run(_burst(url, count, body))
        with Ledger(ledger) as book:
            spent = book.spend("team", 0.0)
            tokens = sum(r.prompt_tokens + r.completion_tokens for r in book.rows())
        print(
            f"{name}: {statuses.count(200)} of {count} served, "
            f"{len(fake.requests())} reached the upstream, spent ${spent}, {tokens} tokens"
        )


def main() -> None:
    budget = {"budget": {"daily_usd": "0.01"}}
    plain = {"model": "cloud", "messages": MSG, "max_tokens": 15}
    scenario("budget $0.01, $0.0015 requests, 50 concurrent plain", budget, plain)
    scenario(
        "budget $0.01, $0.0015 requests, 50 concurrent streams", budget, {**plain, "stream": True}
    )
    scenario(
        "budget $0.01, no max_tokens (reserve_output_tokens 4096), 50 concurrent",
        budget,
        {"model": "cloud", "messages": MSG},
    )
    scenario("budget $0.01, one request with n=128", budget, {**plain, "n": 128}, count=1)
    big = [{"role": "user", "content": "word " * 400}]
    scenario(
        "tpm 1000, 50 concurrent ~500-token prompts",
        {"tpm": 1000},
        {"model": "local", "messages": big, "max_tokens": 15},
    )
    huge = [{"role": "user", "content": "x" * 80_000}]
    scenario(
        "tpm 100, one 20,000-token prompt", {"tpm": 100}, {"model": "local", "messages": huge}, 1
    )
    scenario("daily_usd 0, 5 requests", {"budget": {"daily_usd": "0"}}, plain, count=5)
    scenario("rpm 10, 50 concurrent", {"rpm": 10}, {"model": "local", "messages": MSG})
    print(f"(cost of one request: ${Decimal('0.0001') * 15})")


if __name__ == "__main__":
    main()
