"""A stream whose upstream stops sending (no more chunks, no `[DONE]`, no close) ends after
`stream_idle_timeout` seconds without data: an in-band error event, `[DONE]`, a ledger row,
and the upstream connection released. Real server on loopback, both lanes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.engine.lanes import Lanes
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

MSG = [{"role": "user", "content": "hello there"}]


@pytest.fixture(params=["native", "litellm"])
def lane(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _config(fake: FakeUpstreamThread, ledger: Path, **info: Any) -> Any:
    return config_from(
        {
            "model_list": [deployment("m", "hosted_vllm/fake-model", fake.url + "/v1", **info)],
            "router_settings": {"timeout": 60},
            "triage": {"stream_idle_timeout": 0.5, "ledger": {"path": str(ledger)}},
        }
    )


def _stream(url: str) -> tuple[list[str], float]:
    """The stream's data lines, and the seconds from its first data line to its end."""
    body = {"model": "m", "messages": MSG, "stream": True}
    lines: list[str] = []
    first = 0.0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=20) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                first = first or time.monotonic()
                lines.append(line)
    return lines, time.monotonic() - first


def test_a_stalled_stream_ends_with_an_error_event_and_done(
    fake: FakeUpstreamThread, tmp_path: Path, lane: str
) -> None:
    # A token every 30 s after the first: to the client, an upstream that went silent.
    fake.configure(tokens_per_second=1 / 30, completion_tokens=50)
    ledger = tmp_path / "l.db"
    config = _config(fake, ledger)
    with serve(create_app(config, lanes=Lanes(config, force=lane))) as url:  # type: ignore[arg-type]
        lines, after_first = _stream(url)
        deadline = time.monotonic() + 10
        while fake.stats()["cancelled"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2].removeprefix("data: "))["error"]
    assert error["code"] == "upstream_stream_stalled" and error["type"] == "timeout_error"
    assert any('"content"' in line for line in lines[:-2])  # what came before still came
    # Generous bound: ends about 0.5 s after the last chunk, not after the upstream's 30 s
    # nor the route's 60 s stream timeout.
    assert after_first < 10
    assert fake.stats()["cancelled"] == 1  # the upstream connection was let go
    with Ledger(ledger) as rows:
        [row] = rows.rows()
    assert (row.status, row.error, row.deployment) == (504, "upstream_stream_stalled", "m-1")
    assert row.completion_tokens >= 1


def test_a_deployment_may_allow_longer_silences(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    fake.configure(tokens_per_second=1.5, completion_tokens=4)  # ~0.7 s between chunks
    ledger = tmp_path / "l.db"
    config = _config(fake, ledger, stream_idle_timeout=5)
    with serve(create_app(config)) as url:
        lines, _ = _stream(url)
    assert lines[-1] == "data: [DONE]"
    assert not any('"error"' in line for line in lines)
    with Ledger(ledger) as rows:
        assert [(r.status, r.error) for r in rows.rows()] == [(200, "")]


def test_the_idle_timeout_is_validated() -> None:
    from triage.config import ConfigError

    with pytest.raises(ConfigError):
        config_from(
            {
                "model_list": [deployment("m", "hosted_vllm/x", "http://127.0.0.1:1/v1")],
                "triage": {"stream_idle_timeout": 0},
            }
        )
