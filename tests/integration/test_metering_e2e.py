"""Cost, savings, the ledger and the metrics, observed through the real app."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger
from triage.metering import PriceBook

MSG = [{"role": "user", "content": "Summarize: the cat sat on the mat all day long."}]

METRIC_NAMES = [
    "triage_requests_total",
    "triage_request_duration_seconds",
    "triage_time_to_first_token_seconds",
    "triage_upstream_duration_seconds",
    "triage_overhead_seconds",
    "triage_tokens_total",
    "triage_cost_usd_total",
    "triage_cost_avoided_usd_total",
    "triage_classification_total",
    "triage_classification_seconds",
    "triage_retries_total",
    "triage_fallbacks_total",
    "triage_deployment_state",
    "triage_in_flight_requests",
    "triage_config_info",
]


def _config(fake: FakeUpstreamThread, ledger: Path) -> Any:
    base = fake.url + "/v1"
    return config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/small", base, local=True, gpu_hour_cost=3.6),
                deployment("cloud", "openai/gpt-4o", base, params={"api_key": "sk-x"}),
                deployment(
                    "priced",
                    "hosted_vllm/x",
                    base,
                    params={"input_cost_per_token": "0.001", "output_cost_per_token": "0.002"},
                ),
            ],
            "router_settings": {"num_retries": 1, "fallbacks": [{"local": ["cloud"]}]},
            "triage": {
                "default_route": ["local", "cloud"],
                "ledger": {"path": str(ledger)},
                "savings": {"reference_model": "openai/gpt-4o"},
            },
        }
    )


def _chat(url: str, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": MSG, **extra},
        headers={"x-request-id": extra.pop("rid", "req-1")},
        timeout=10,
    )


def test_cloud_cost_comes_from_the_bundled_price_map(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with serve(create_app(_config(fake, tmp_path / "l.db"))) as url:
        response = _chat(url, "cloud")
    usage = response.json()["usage"]
    price = PriceBook().price_for("openai/gpt-4o")
    expected = (
        price.input_per_token * usage["prompt_tokens"]
        + price.output_per_token * usage["completion_tokens"]
    )
    assert Decimal(response.headers["x-triage-cost-usd"]) == expected.normalize()
    assert expected > 0


def test_price_override_wins(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    with serve(create_app(_config(fake, tmp_path / "l.db"))) as url:
        response = _chat(url, "priced")
    usage = response.json()["usage"]
    expected = (
        Decimal("0.001") * usage["prompt_tokens"] + Decimal("0.002") * usage["completion_tokens"]
    )
    assert Decimal(response.headers["x-triage-cost-usd"]) == expected


def test_local_cost_from_gpu_hour_cost_and_savings_in_the_ledger(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(latency_ms=100)
    with serve(create_app(_config(fake, tmp_path / "l.db"))) as url:
        response = _chat(url, "local")
    cost = Decimal(response.headers["x-triage-cost-usd"])
    # $3.60/h is $0.001/s; the call took at least 0.1 s of upstream time.
    assert Decimal("0.0001") <= cost < Decimal("0.01")
    with Ledger(tmp_path / "l.db") as ledger:
        (row,) = ledger.rows()
    assert row.request_id == "req-1" and row.route == "local" and row.status == 200
    assert abs(row.cost_usd - cost) <= Decimal("0.000000005")  # the header rounds to 8 places
    assert row.counterfactual_usd > 0
    assert row.usage_source == "upstream"


def test_stream_usage_comes_from_the_injected_usage_chunk(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with (
        serve(create_app(_config(fake, tmp_path / "l.db"))) as url,
        httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            timeout=10,
            json={"model": "cloud", "messages": MSG, "stream": True},
        ) as response,
    ):
        chunks = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")
        ]
    assert all("usage" not in c for c in chunks)  # the client did not ask for it
    sent = fake.requests()[0].json
    assert sent["stream_options"] == {"include_usage": True}  # but Triage did
    with Ledger(tmp_path / "l.db") as ledger:
        (row,) = ledger.rows()
    assert row.usage_source == "upstream" and row.completion_tokens > 0 and row.stream
    assert row.cost_usd > 0 and row.ttft_s is not None


def test_usage_endpoint_reports_spend_and_savings(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    with serve(create_app(_config(fake, tmp_path / "l.db"))) as url:
        for model in ("local", "cloud", "cloud"):
            _chat(url, model)
        report = httpx.get(url + "/v1/triage/usage", params={"by": "route"}).json()
        bad = httpx.get(url + "/v1/triage/usage", params={"since": "yesterday-ish"})
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["cloud"]["requests"] == 2 and groups["local"]["requests"] == 1
    assert report["total"]["requests"] == 3
    assert bad.status_code == 400


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def test_metrics_expose_every_name_with_traffic(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    for _ in range(3):  # local fails twice (a retry, then a fallback), cloud once (a retry)
        fake.add_fault(kind="status", status=500)
    with serve(create_app(_config(fake, tmp_path / "l.db"))) as url:
        _chat(url, "auto")
        _chat(url, "local")  # served locally: cheaper than the reference, so a saving
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            timeout=10,
            json={"model": "cloud", "messages": MSG, "stream": True},
        ) as r:
            r.read()
        for _ in range(3):
            httpx.get(url + "/health")
            httpx.get(url + "/metrics")
        text = httpx.get(url + "/metrics").text
    samples = _samples(text)
    for name in METRIC_NAMES:
        assert any(s.startswith(name) for s in samples), name
    assert samples["triage_requests_total"] == 3  # /metrics and /health do not count
    assert samples["triage_retries_total"] == 2
    assert samples["triage_fallbacks_total"] == 1
    assert samples["triage_cost_usd_total"] > 0 and samples["triage_cost_avoided_usd_total"] > 0
    assert samples["triage_time_to_first_token_seconds_count"] == 1
    assert 'endpoint="chat"' in text and "/metrics" not in text


def test_one_json_log_line_per_request_without_the_prompt(
    fake: FakeUpstreamThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triage.requests")
    with serve(create_app(_config(fake, tmp_path / "l.db"))) as url:
        response = _chat(url, "local", rid="abc-123")
    assert response.headers["x-request-id"] == "abc-123"
    records = [r for r in caplog.records if r.name == "triage.requests"]
    assert len(records) == 1
    fields = records[0].triage  # type: ignore[attr-defined]
    assert fields["request_id"] == "abc-123" and fields["route"] == "local"
    from triage.logs import JsonFormatter

    line = JsonFormatter().format(records[0])
    assert json.loads(line)["request_id"] == "abc-123"
    assert "cat sat" not in line
