"""Nothing a backend sends is read without a bound: a 100 MB answer or one 100 MB SSE line is
refused with a clear 502 (or, once a stream has started, an in-band error and `[DONE]`), and the
gateway's peak memory stays small. Measured on a real `triage serve` process (/proc VmHWM).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.bounds_support import HostileUpstream, memory, triage_serve

MB = 1000 * 1000
HUGE = 100 * MB
# Peak RSS may grow by the bound itself (32 MiB by default) and the read buffers around it;
# before the bound, a 100 MB answer took it up by ~280 MB and a 100 MB line by ~390 MB.
GROWTH = 80 * 1024 * 1024


def _deployment(upstream: HostileUpstream, model: str, **info: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model_name": model,
        "litellm_params": {"model": f"hosted_vllm/{model}", "api_base": upstream.url + "/v1"},
    }
    if info:
        entry["model_info"] = info
    return entry


def _ask(url: str, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def _stream(url: str, model: str) -> tuple[int, list[str]]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.text]
        return 200, [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as hostile:
        yield hostile


@pytest.fixture(scope="module")
def gateway(
    upstream: HostileUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    models = ["ok", f"huge-{HUGE}", f"declared-{HUGE}", f"line-{HUGE}", f"late-{HUGE}"]
    models.append(f"lines-{HUGE}")
    config = {
        "model_list": [_deployment(upstream, m) for m in models],
        "router_settings": {"num_retries": 0, "timeout": 60},
    }
    with triage_serve(tmp_path_factory.mktemp("bounds"), config) as served:
        url, _ = served
        assert _ask(url, "ok").status_code == 200  # warm: the first request's imports
        assert _stream(url, "ok")[0] == 200
        yield served


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 502, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "upstream_too_large"
    assert error["type"] == "api_error"
    assert "server.max_response_bytes" in error["message"]


def test_a_100_mb_answer_is_a_502_and_memory_stays_bounded(
    gateway: tuple[str, int], upstream: HostileUpstream
) -> None:
    url, pid = gateway
    before = memory(pid)["VmHWM"]
    _assert_too_large(_ask(url, f"huge-{HUGE}"))
    growth = memory(pid)["VmHWM"] - before
    assert growth < GROWTH, f"peak RSS grew {growth / MB:.0f} MB"
    # The connection was dropped, not drained: the bound (32 MiB) and the socket buffers
    # between are all the upstream could send.
    assert upstream.sent[f"huge-{HUGE}"] < 3 * HUGE // 4
    assert _ask(url, "ok").status_code == 200  # and the gateway serves on


def test_a_declared_length_over_the_bound_is_refused_before_reading(
    gateway: tuple[str, int], upstream: HostileUpstream
) -> None:
    url, pid = gateway
    before = memory(pid)["VmHWM"]
    _assert_too_large(_ask(url, f"declared-{HUGE}"))
    assert memory(pid)["VmHWM"] - before < GROWTH
    assert upstream.sent[f"declared-{HUGE}"] < 16 * MB


def test_one_100_mb_sse_line_is_a_502_before_the_stream_starts(
    gateway: tuple[str, int], upstream: HostileUpstream
) -> None:
    url, pid = gateway
    before = memory(pid)["VmHWM"]
    status, events = _stream(url, f"line-{HUGE}")
    growth = memory(pid)["VmHWM"] - before
    assert status == 502, events
    assert '"upstream_too_large"' in events[0] and "server.max_sse_line_bytes" in events[0]
    assert growth < GROWTH, f"peak RSS grew {growth / MB:.0f} MB"
    assert upstream.sent[f"line-{HUGE}"] < HUGE // 2


def test_a_100_mb_event_in_short_data_lines_is_bounded_too(
    gateway: tuple[str, int], upstream: HostileUpstream
) -> None:
    url, pid = gateway
    before = memory(pid)["VmHWM"]
    status, events = _stream(url, f"lines-{HUGE}")
    assert status == 502 and '"upstream_too_large"' in events[0], events
    assert memory(pid)["VmHWM"] - before < GROWTH
    assert upstream.sent[f"lines-{HUGE}"] < HUGE // 2


def test_a_100_mb_line_mid_stream_ends_it_with_an_error_event_and_done(
    gateway: tuple[str, int], upstream: HostileUpstream
) -> None:
    url, pid = gateway
    before = memory(pid)["VmHWM"]
    status, events = _stream(url, f"late-{HUGE}")
    growth = memory(pid)["VmHWM"] - before
    assert status == 200
    assert [e for e in events if "part" in e], "the chunks before the long line were relayed"
    assert '"upstream_too_large"' in events[-2]
    assert events[-1] == "[DONE]"
    assert growth < GROWTH, f"peak RSS grew {growth / MB:.0f} MB"
    assert upstream.sent[f"late-{HUGE}"] < HUGE // 2


def test_the_bounds_are_settings(tmp_path: Path, upstream: HostileUpstream) -> None:
    """Lower bounds apply: a 2 MB answer passes the default and fails a 1 MB bound, on the
    native lane and (checked after litellm has read it) on the litellm lane."""
    size = 2 * MB
    native = _deployment(upstream, f"huge-{size}")
    litellm = {
        "model_name": "via-litellm",
        "litellm_params": {
            "model": f"openai/valid-{size}",
            "api_base": upstream.url + "/v1",
            "api_key": "sk-test",
        },
        "model_info": {"lane": "litellm"},
    }
    config = {
        "model_list": [native, litellm],
        "router_settings": {"num_retries": 0, "timeout": 60},
        "server": {"max_response_bytes": MB, "max_sse_line_bytes": 64 * 1024},
    }
    with triage_serve(tmp_path, config) as (url, _):
        _assert_too_large(_ask(url, f"huge-{size}"))
        _assert_too_large(_ask(url, "via-litellm"))
