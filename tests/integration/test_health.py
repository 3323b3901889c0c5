"""/health and /health/ready: deployment states from free probes and from live traffic."""

from __future__ import annotations

import httpx

from tests.helpers import config_from, deployment, free_port, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread


def test_health_touches_no_backend(fake: FakeUpstreamThread) -> None:
    config = config_from({"model_list": [deployment("a", "hosted_vllm/m", fake.url + "/v1")]})
    with serve(create_app(config)) as url:
        assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert fake.requests() == []


def test_ready_reports_healthy_unreachable_and_cooling_down(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    fake.configure(models=["good"])
    fake2.configure(models=["flaky"], faults=[{"kind": "status", "status": 500, "times": 10}])
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = config_from(
        {
            "model_list": [
                deployment("a", "hosted_vllm/good", fake.url + "/v1"),
                deployment("b", "hosted_vllm/flaky", fake2.url + "/v1"),
                deployment("c", "hosted_vllm/gone", dead),
                deployment("d", "hosted_vllm/not-loaded", fake.url + "/v1"),
            ],
            "router_settings": {"num_retries": 0, "allowed_fails": 1, "cooldown_time": 60},
        }
    )
    with serve(create_app(config)) as url:
        failed = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "b", "messages": [{"role": "user", "content": "x"}]},
        )
        report = httpx.get(url + "/health/ready").json()
    assert failed.status_code == 502
    states = {d["id"]: d["state"] for d in report["deployments"]}
    assert states == {
        "a-1": "healthy",
        "b-1": "cooling_down",
        "c-1": "unreachable",
        "d-1": "unreachable",
    }
    assert report["status"] == "degraded"
    assert set(report["unavailable_groups"]) == {"b", "c", "d"}
    # Probes are free: only model listings, never a completion.
    probes = [r for r in fake.requests() + fake2.requests() if r.method == "GET"]
    assert {r.path for r in probes} == {"/v1/models"}
    assert [r.path for r in fake2.requests() if r.method == "POST"] == ["/v1/chat/completions"]


def test_ready_is_503_when_no_group_can_serve() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = config_from({"model_list": [deployment("a", "hosted_vllm/m", dead)]})
    with serve(create_app(config)) as url:
        response = httpx.get(url + "/health/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
