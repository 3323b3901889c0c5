"""The request path counts into plain numbers (telemetry/tally.py) that reach prometheus-client
only when published; these tests try to catch a count that a scrape or a shutdown misses: a
scrape right after (and during) a burst of concurrent requests, in one process and across the
real `triage serve --workers 2`, and the metric files a worker leaves when it shuts down."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import config_from, deployment
from tests.integration.test_process import _serve, _write_config
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.telemetry.tally import STAMP_PREFIX

MSG = [{"role": "user", "content": "Summarize: the cat sat on the mat all day long."}]


def _totals(text: str) -> dict[str, float]:
    """Each sample name's sum over its label sets (buckets left out)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith(("_bucket", "_created")):
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def _expect(answers: list[httpx.Response]) -> dict[str, float]:
    """What /metrics must show for these answered chat requests."""
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    usage = [a.json()["usage"] for a in answers]
    n = float(len(answers))
    return {
        "triage_requests_total": n,
        "triage_request_duration_seconds_count": n,
        "triage_upstream_duration_seconds_count": n,
        "triage_overhead_seconds_count": n,
        "triage_tokens_total": float(
            sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage)
        ),
        "triage_in_flight_requests": 0.0,
    }


def _shows(text: str, expected: dict[str, float]) -> None:
    totals = _totals(text)
    assert {name: totals.get(name) for name in expected} == expected


async def _burst(http: httpx.AsyncClient, count: int, model: str = "auto") -> list[httpx.Response]:
    body = {"model": model, "messages": MSG}
    return list(
        await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(count)))
    )


def _app_config(fake: FakeUpstreamThread) -> Any:
    return config_from(
        {
            "model_list": [deployment("local", "hosted_vllm/small", fake.url + "/v1")],
            "triage": {"default_route": ["local"], "ledger": {"enabled": False}},
            "server": {"metrics_public": True},
        }
    )


async def test_a_scrape_right_after_concurrent_requests_shows_every_one(
    fake: FakeUpstreamThread,
) -> None:
    fake.configure(latency_ms=20)
    app = create_app(_app_config(fake))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30) as http,
    ):
        seen: list[float] = []

        async def scrape_during() -> None:
            for _ in range(20):
                text = (await http.get("/metrics")).text
                seen.append(_totals(text).get("triage_requests_total", 0.0))
                await asyncio.sleep(0.005)

        answers, _ = await asyncio.gather(_burst(http, 40), scrape_during())
        text = (await http.get("/metrics")).text
        classified = (await http.get("/metrics")).text
    assert seen == sorted(seen) and seen[-1] <= 40  # published counts only ever grow
    _shows(text, _expect(answers))
    assert _totals(classified)["triage_classification_total"] == 40
    assert _totals(classified)["triage_classification_seconds_count"] == 40


@pytest.fixture
def multiprocess_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """prometheus-client's multiprocess value class, as in a `--workers N` worker."""
    directory = tmp_path / "prom"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    values.ValueClass = values.get_value_class()
    try:
        yield directory
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()


def _files(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry).decode()


@pytest.mark.filterwarnings("ignore:Clearing labels")  # triage_config_info, as ever
async def test_a_worker_shutting_down_leaves_every_count_in_its_files(
    fake: FakeUpstreamThread, multiprocess_values: Path
) -> None:
    app = create_app(_app_config(fake), multiproc_dir=str(multiprocess_values))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        async with app.router.lifespan_context(app):
            answers = await _burst(http, 12)
            _shows((await http.get("/metrics")).text, _expect(answers))
            answers += await _burst(http, 5)  # after the scrape: only the shutdown publishes
        # The process is gone as far as anyone can tell: only its files are left.
        _shows(_files(multiprocess_values), _expect(answers))
    assert not list(multiprocess_values.glob(STAMP_PREFIX + "*"))  # no scrape waits for it


def test_two_workers_show_the_sum_of_a_concurrent_burst_and_keep_it_at_shutdown(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    directory = tmp_path / "prom"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    config = _write_config(tmp_path, fake.url, tmp_path / "usage.db")
    fake.configure(latency_ms=20)

    async def traffic(url: str) -> tuple[list[httpx.Response], list[httpx.Response], list[str]]:
        # A new connection for each request and scrape, so that both workers take some (a
        # kept-alive connection stays with one worker, and a worker sees its own counts).
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            answers: list[httpx.Response] = []
            for _ in range(20):  # until both workers took some (the kernel picks)
                answers += await _burst(http, 16, "native")
                if len(list(directory.glob("counter_*.db"))) == 2:
                    break
            scrapes = [(await http.get("/metrics")).text for _ in range(6)]
            counted = len(answers)
            answers += await _burst(http, 8, "native")  # counted after the last scrape
        return answers[:counted], answers, scrapes

    with _serve(config, env, "--workers", "2") as (url, proc):
        scraped, answers, scrapes = asyncio.run(traffic(url))
        proc.terminate()
        proc.wait(timeout=30)
    assert len(list(directory.glob("counter_*.db"))) == 2  # both workers counted requests
    for text in scrapes:
        _shows(text, _expect(scraped))
    totals = _totals(_files(directory))
    assert totals["triage_requests_total"] == len(answers) == len(scraped) + 8
    assert totals["triage_request_duration_seconds_count"] == len(answers)
    assert not list(directory.glob(STAMP_PREFIX + "*"))
