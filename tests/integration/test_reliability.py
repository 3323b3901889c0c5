"""Reliability behaviour end to end, against fake upstreams on loopback, on both lanes.

Each test pins one behaviour of the runner (retries, fallbacks by failure kind, cooldowns,
latency-based routing, timeouts, safe streaming, cancellation) and fails if it is removed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.engine.lanes import Lanes
from triage.engine.runner import Engine
from triage.fakeupstream import FakeUpstreamThread
from triage.state import BreakerSettings, MemoryStore

LANES = ["native", "litellm"]
MSG = [{"role": "user", "content": "hello"}]


def _gateway(config_data: dict[str, Any], lane: str) -> Any:
    config = config_from(config_data)
    return serve(create_app(config, lanes=Lanes(config, force=lane)))  # type: ignore[arg-type]


def _chat(url: str, model: str = "a", **extra: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions", json={"model": model, "messages": MSG, **extra}, timeout=30
    )


def _two_groups(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, **router: Any
) -> dict[str, Any]:
    return {
        "model_list": [
            deployment("a", "hosted_vllm/m-a", fake.url + "/v1"),
            deployment("b", "hosted_vllm/m-b", fake2.url + "/v1"),
        ],
        "router_settings": {"num_retries": 0, "fallbacks": [{"a": ["b"]}], "timeout": 5, **router},
    }


@pytest.fixture(params=LANES)
def lane(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_retries_inside_the_group_on_500(fake: FakeUpstreamThread, lane: str) -> None:
    fake.add_fault(kind="status", status=500)
    config = {
        "model_list": [deployment("a", "hosted_vllm/m", fake.url + "/v1")],
        "router_settings": {"num_retries": 2},
    }
    with _gateway(config, lane) as url:
        response = _chat(url)
    assert response.status_code == 200
    assert response.headers["x-triage-attempts"] == "2"
    assert len(fake.requests()) == 2


def test_never_retries_a_client_error(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.add_fault(kind="status", status=400, message="bad tool schema")
    with _gateway(_two_groups(fake, fake2, num_retries=3), lane) as url:
        response = _chat(url)
    assert response.status_code == 400
    assert len(fake.requests()) == 1 and fake2.requests() == []


def test_honours_retry_after(fake: FakeUpstreamThread, lane: str) -> None:
    fake.add_fault(kind="status", status=429, retry_after=1)
    config = {
        "model_list": [deployment("a", "hosted_vllm/m", fake.url + "/v1")],
        "router_settings": {"num_retries": 1},
    }
    with _gateway(config, lane) as url:
        response = _chat(url)
    assert response.status_code == 200
    first, second = fake.requests()
    assert second.time - first.time >= 0.9


def test_falls_back_to_the_next_group(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.add_fault(kind="status", status=503)
    with _gateway(_two_groups(fake, fake2), lane) as url:
        response = _chat(url)
    assert response.status_code == 200
    assert response.headers["x-triage-route"] == "b"
    assert response.headers["x-triage-fallbacks"] == "1"


def test_context_window_error_uses_context_window_fallbacks(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    data = _two_groups(fake, fake2)
    data["router_settings"]["fallbacks"] = []
    data["router_settings"]["context_window_fallbacks"] = [{"a": ["b"]}]
    fake.add_fault(kind="context_window")
    with _gateway(data, lane) as url:
        response = _chat(url)
    assert response.status_code == 200
    assert response.headers["x-triage-route"] == "b"


def test_context_window_is_decided_before_the_call(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    data = _two_groups(fake, fake2)
    data["model_list"][0]["model_info"] = {"max_input_tokens": 10}
    data["router_settings"]["context_window_fallbacks"] = [{"a": ["b"]}]
    with _gateway(data, lane) as url:
        response = httpx.post(
            url + "/v1/chat/completions",
            timeout=10,
            json={"model": "a", "messages": [{"role": "user", "content": "word " * 200}]},
        )
    assert response.status_code == 200
    assert response.headers["x-triage-route"] == "b"
    assert fake.requests() == []


def test_content_policy_error_uses_content_policy_fallbacks(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    data = _two_groups(fake, fake2)
    data["router_settings"]["fallbacks"] = []
    data["router_settings"]["content_policy_fallbacks"] = [{"a": ["b"]}]
    fake.add_fault(kind="content_policy")
    with _gateway(data, lane) as url:
        response = _chat(url)
    assert response.status_code == 200
    assert response.headers["x-triage-route"] == "b"


def test_attempts_never_multiply(fake: FakeUpstreamThread, lane: str) -> None:
    fake.configure(faults=[{"kind": "status", "status": 500, "times": 100}])
    config = {
        "model_list": [deployment(g, f"hosted_vllm/{g}", fake.url + "/v1") for g in "abc"],
        "router_settings": {
            "num_retries": 3,
            "fallbacks": [{"a": ["b", "c"]}],
            "allowed_fails": 100,
        },
        "triage": {"max_attempts": 4, "ledger": {"enabled": False}},
    }
    with _gateway(config, lane) as url:
        response = _chat(url)
    assert response.status_code == 502
    assert len(fake.requests()) == 4


def test_cooldown_skips_a_failing_deployment_then_answers_503(
    fake: FakeUpstreamThread, lane: str
) -> None:
    fake.configure(faults=[{"kind": "status", "status": 500, "times": 100}])
    config = {
        "model_list": [deployment("a", "hosted_vllm/m", fake.url + "/v1")],
        "router_settings": {"num_retries": 0, "allowed_fails": 2, "cooldown_time": 30},
    }
    with _gateway(config, lane) as url:
        assert _chat(url).status_code == 502
        assert _chat(url).status_code == 502
        response = _chat(url)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert len(fake.requests()) == 2


def test_cooldown_takes_only_the_failing_deployment_out(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.configure(faults=[{"kind": "status", "status": 500, "times": 100}])
    config = {
        "model_list": [
            deployment("a", "hosted_vllm/m", fake.url + "/v1"),
            deployment("a", "hosted_vllm/m", fake2.url + "/v1"),
        ],
        "router_settings": {"num_retries": 1, "allowed_fails": 1, "cooldown_time": 30},
    }
    with _gateway(config, lane) as url:
        statuses = [_chat(url).status_code for _ in range(6)]
    assert statuses == [200] * 6
    assert len(fake.requests()) <= 1


def test_latency_routing_prefers_the_fast_deployment(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    # A wide gap (50 ms against 2): on a loaded 2-core box a stall of the fast one's requests
    # must not make it look slower than the slow one (with 20 ms it did once: 148 of 200).
    fake.configure(latency_ms=50)
    fake2.configure(latency_ms=2)
    config = {
        "model_list": [
            deployment("a", "hosted_vllm/m", fake.url + "/v1"),
            deployment("a", "hosted_vllm/m", fake2.url + "/v1"),
        ]
    }
    body = {"model": "a", "messages": MSG}
    with _gateway(config, lane) as url, httpx.Client(base_url=url, timeout=30) as client:

        def served_by() -> str:
            return client.post("/v1/chat/completions", json=body).headers["x-triage-deployment"]

        routes = [served_by() for _ in range(200)]
        assert routes.count("a-2") >= 160
        fake.configure(latency_ms=0)
        fake2.configure(latency_ms=50)
        later = [served_by() for _ in range(100)]
    assert later[-40:].count("a-1") >= 34  # traffic shifted back within 60 requests


def test_hung_upstream_is_abandoned_for_the_next_candidate(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.add_fault(kind="hang")
    data = _two_groups(fake, fake2, timeout=1)
    with _gateway(data, lane) as url:
        started = time.monotonic()
        response = _chat(url)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["x-triage-route"] == "b"
    assert elapsed < 5


def test_stream_failure_before_first_byte_falls_back_invisibly(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.add_fault(kind="status", status=500)
    with (
        _gateway(_two_groups(fake, fake2), lane) as url,
        httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            timeout=10,
            json={"model": "a", "stream": True, "messages": MSG},
        ) as response,
    ):
        lines = [line for line in response.iter_lines() if line]
        route = response.headers["x-triage-route"]
    assert route == "b"
    assert lines[-1] == "data: [DONE]"
    assert not any('"error"' in line for line in lines)


def test_stream_first_token_timeout_moves_on(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.configure(ttft_ms=3000)
    data = _two_groups(fake, fake2)
    data["triage"] = {"first_token_timeout": 0.5, "ledger": {"enabled": False}}
    with (
        _gateway(data, lane) as url,
        httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            timeout=10,
            json={"model": "a", "stream": True, "messages": MSG},
        ) as response,
    ):
        lines = [line for line in response.iter_lines() if line]
        route = response.headers["x-triage-route"]
    assert route == "b" and lines[-1] == "data: [DONE]"


def test_client_disconnect_cancels_the_upstream_request(
    fake: FakeUpstreamThread, lane: str
) -> None:
    fake.configure(tokens_per_second=20, completion_tokens=200)
    config = {"model_list": [deployment("a", "hosted_vllm/m", fake.url + "/v1")]}
    with _gateway(config, lane) as url:
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            timeout=10,
            json={"model": "a", "stream": True, "messages": MSG},
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    break
        deadline = time.monotonic() + 5
        while fake.stats()["cancelled"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert fake.stats()["cancelled"] == 1


def test_route_timeout_overrides_the_router_timeout(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread, lane: str
) -> None:
    fake.add_fault(kind="hang")
    data = _two_groups(fake, fake2, timeout=30)
    data["triage"] = {
        "routes": {"chat": {"groups": ["a", "b"], "timeout": 0.5}},
        "ledger": {"enabled": False},
    }
    with _gateway(data, lane) as url:
        started = time.monotonic()
        response = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "auto", "messages": MSG},
            headers={"x-triage-task": "chat"},
            timeout=30,
        )
        elapsed = time.monotonic() - started
    assert response.headers["x-triage-route"] == "b"
    assert elapsed < 10  # the route's 0.5 s, not the router's 30 s


def test_streams_are_ranked_by_time_to_first_token(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    # a-1 starts at once but trickles; a-2 thinks first, then sends everything at once.
    fake.configure(tokens_per_second=100, completion_tokens=12)
    fake2.configure(latency_ms=40)
    config = {
        "model_list": [
            deployment("a", "hosted_vllm/m", fake.url + "/v1"),
            deployment("a", "hosted_vllm/m", fake2.url + "/v1"),
        ]
    }
    with _gateway(config, "native") as url, httpx.Client(base_url=url, timeout=30) as client:

        def served(stream: bool) -> str:
            body = {"model": "a", "messages": MSG, "stream": stream}
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                response.read()
                return response.headers["x-triage-deployment"]

        plain = [served(False) for _ in range(30)]
        streams = [served(True) for _ in range(30)]
    assert plain[-20:].count("a-2") >= 16  # whole answer sooner
    assert streams[-20:].count("a-1") >= 16  # first token at once


def test_retry_backoff_is_exponential_with_jitter(fake: FakeUpstreamThread) -> None:
    fake.configure(faults=[{"kind": "status", "status": 500, "times": 3}])
    config = config_from(
        {
            "model_list": [deployment("a", "hosted_vllm/m", fake.url + "/v1")],
            "router_settings": {"num_retries": 3, "retry_after": 0.1, "allowed_fails": 10},
        }
    )
    waits: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        waits.append(seconds)

    lanes = Lanes(config)
    store = MemoryStore(BreakerSettings(allowed_fails=10))
    engine = Engine(config, lanes.for_deployment, store, sleep=recording_sleep)
    with serve(create_app(config, engine=engine, lanes=lanes)) as url:
        response = _chat(url)
    assert response.status_code == 200
    assert len(waits) == 3
    for i, wait in enumerate(waits):
        base = 0.1 * 2**i
        assert base * 0.5 <= wait <= base  # full jitter in the upper half of the step
    assert waits[2] > waits[0]
