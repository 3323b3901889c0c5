"""Each deployment's price is worked out once and kept (issue 16): the precedence must still be
an override over a compute price over the bundled map, for every deployment of one app, and a
config reload that changes a deployment's price must be priced at the new price."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger
from triage.metering import PriceBook

MSG = [{"role": "user", "content": "Summarize: the cat sat on the mat all day long."}]


def _config(fake: FakeUpstreamThread, ledger: Path, input_price: str) -> Any:
    base = fake.url + "/v1"
    both = {"input_cost_per_token": input_price, "output_cost_per_token": "0.002"}
    return config_from(
        {
            "model_list": [
                # An override and a compute price: the override wins.
                deployment("both", "hosted_vllm/x", base, params=both, gpu_hour_cost=3.6),
                deployment("cloud", "openai/gpt-4o", base, params={"api_key": "sk-x"}),
            ],
            "triage": {"default_route": ["cloud"], "ledger": {"path": str(ledger)}},
        }
    )


def _cost(url: str, model: str, rid: str) -> tuple[Decimal, dict[str, int]]:
    response = httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": MSG},
        headers={"x-request-id": rid},
        timeout=10,
    )
    assert response.status_code == 200
    return Decimal(response.headers["x-triage-cost-usd"]), response.json()["usage"]


def test_override_beats_compute_and_bundled_prices_are_kept_apart(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    with serve(create_app(_config(fake, ledger, "0.001"))) as url:
        costs = [_cost(url, model, f"r{i}") for i, model in enumerate(["both", "cloud"] * 2)]
    gpt = PriceBook().price_for("openai/gpt-4o")
    for (cost, usage), model in zip(costs, ["both", "cloud"] * 2, strict=True):
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        if model == "both":
            expected = Decimal("0.001") * prompt + Decimal("0.002") * completion
        else:
            expected = gpt.input_per_token * prompt + gpt.output_per_token * completion
        assert cost == expected.normalize()
    with Ledger(ledger) as rows:
        assert [r.cost_usd.normalize() for r in rows.rows()] == [c for c, _ in costs]


def test_a_reload_that_changes_a_price_is_priced_at_the_new_price(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    prices = iter(["0.005"])
    ledger = tmp_path / "l.db"
    app = create_app(
        _config(fake, ledger, "0.001"),
        config_source=lambda: _config(fake, ledger, next(prices)),
    )
    with serve(app) as url:
        before, usage = _cost(url, "both", "r1")
        assert httpx.post(url + "/admin/reload", timeout=10).status_code == 200
        after, again = _cost(url, "both", "r2")
    assert usage == again
    tokens, completion = usage["prompt_tokens"], usage["completion_tokens"]
    assert before == (Decimal("0.001") * tokens + Decimal("0.002") * completion).normalize()
    assert after == (Decimal("0.005") * tokens + Decimal("0.002") * completion).normalize()
