"""A failed request keeps its facts: where it went (route, deployment), how many attempts and
fallbacks it took and what failed (an error kind), in the ledger, the log line and the metrics.
Real app on loopback, fake upstreams failing at the HTTP boundary."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger, LedgerRow

MSG = [{"role": "user", "content": "hello there"}]
ALWAYS_500 = [{"kind": "status", "status": 500, "times": 100}]


@contextmanager
def gateway(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, ledger: Path, **router: Any
) -> Iterator[str]:
    config = config_from(
        {
            "model_list": [
                deployment("a", "hosted_vllm/m-a", fake.url + "/v1"),
                deployment("b", "hosted_vllm/m-b", fake2.url + "/v1"),
            ],
            "router_settings": {"num_retries": 1, "fallbacks": [{"a": ["b"]}], **router},
            "triage": {"ledger": {"enabled": True, "path": str(ledger)}},
        }
    )
    with serve(create_app(config)) as url:
        yield url


def rows(path: Path) -> list[LedgerRow]:
    with Ledger(path) as ledger:
        return ledger.rows()


def samples(url: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    text = httpx.get(url + "/metrics").text
    return {
        frozenset(s.labels.items()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def request_logs(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.triage for r in caplog.records if r.name == "triage.requests"]  # type: ignore[attr-defined]


def test_a_request_that_fails_everywhere_keeps_route_deployment_and_attempts(
    fake: FakeUpstreamThread,
    fake2: FakeUpstreamThread,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.configure(faults=ALWAYS_500)
    fake2.configure(faults=ALWAYS_500)
    ledger = tmp_path / "l.db"
    caplog.set_level(logging.INFO, logger="triage.requests")
    with gateway(fake, fake2, ledger) as url:
        response = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "a", "messages": MSG},
            headers={"x-request-id": "failing-1"},
            timeout=30,
        )
        errors = samples(url, "triage_request_errors_total")
        fallbacks = samples(url, "triage_fallbacks_total")
    assert response.status_code == 502
    [row] = rows(ledger)
    # Two tries in a, then two in b: the last attempt went to b.
    assert (row.status, row.route, row.deployment) == (502, "b", "b-1")
    assert (row.attempts, row.fallbacks, row.error) == (4, 1, "upstream_error")
    [line] = [entry for entry in request_logs(caplog) if entry["request_id"] == "failing-1"]
    assert (line["route"], line["deployment"], line["attempts"]) == ("b", "b-1", 4)
    assert line["error"] == "upstream_error" and line["status"] == 502
    labels = {("endpoint", "chat"), ("route", "b"), ("deployment", "b-1")}
    assert errors[frozenset({*labels, ("error", "upstream_error")})] == 1
    assert sum(fallbacks.values()) == 1  # the move from a to b is counted though it failed


def test_a_timeout_is_recorded_as_one(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(faults=[{"kind": "hang", "times": 10}])
    ledger = tmp_path / "l.db"
    with gateway(fake, fake2, ledger, num_retries=0, fallbacks=[], timeout=0.5) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "a", "messages": MSG}, timeout=30
        )
    assert response.status_code == 504
    [row] = rows(ledger)
    assert (row.route, row.deployment, row.attempts) == ("a", "a-1", 1)
    assert (row.status, row.error) == (504, "upstream_timeout")


def test_a_stream_that_fails_before_its_first_byte_keeps_its_facts(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(faults=ALWAYS_500)
    fake2.configure(faults=ALWAYS_500)
    ledger = tmp_path / "l.db"
    body = {"model": "a", "messages": MSG, "stream": True}
    with gateway(fake, fake2, ledger, num_retries=0) as url:
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 502
    [row] = rows(ledger)
    assert (row.stream, row.route, row.deployment, row.attempts) == (True, "b", "b-1", 2)
    assert row.error == "upstream_error"


def test_a_stream_that_fails_midway_names_the_failure(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(faults=[{"kind": "cut_stream", "after_chunks": 2}])
    ledger = tmp_path / "l.db"
    body = {"model": "a", "messages": MSG, "stream": True}
    with gateway(fake, fake2, ledger) as url:
        text = httpx.post(url + "/v1/chat/completions", json=body, timeout=30).text
    assert '"error"' in text and text.rstrip().endswith("data: [DONE]")
    [row] = rows(ledger)
    assert (row.route, row.deployment, row.attempts) == ("a", "a-1", 1)
    assert row.status >= 500 and row.error.startswith("upstream")


def test_a_refused_request_is_counted_with_its_kind(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    with gateway(fake, fake2, tmp_path / "l.db") as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "nope", "messages": MSG}, timeout=30
        )
        errors = samples(url, "triage_request_errors_total")
    assert response.status_code == 404
    kinds = {dict(labels)["error"] for labels in errors}
    assert kinds == {"model_not_found"}


def test_a_success_has_no_error_kind(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(faults=[{"kind": "status", "status": 500}])  # one failure, then an answer
    ledger = tmp_path / "l.db"
    with gateway(fake, fake2, ledger) as url:
        response = httpx.post(
            url + "/v1/chat/completions", json={"model": "a", "messages": MSG}, timeout=30
        )
        errors = samples(url, "triage_request_errors_total")
    assert response.status_code == 200
    [row] = rows(ledger)
    assert (row.status, row.error, row.attempts) == (200, "", 2)
    assert errors == {}
