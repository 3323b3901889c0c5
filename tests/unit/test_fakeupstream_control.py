"""The fake upstream's control surface (recording, config, stats, reset), its pacing, the
Anthropic endpoint, and the ways to run it (in-loop, thread, command line)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest

from triage.fakeupstream import FakeSettings, FakeUpstreamThread, start_fake

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello there"}]}


def chat(url: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={**CHAT, **extra})


def test_requests_are_recorded_with_headers_and_body(fake: FakeUpstreamThread) -> None:
    with openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-secret", max_retries=0) as sdk:
        sdk.chat.completions.create(**CHAT)  # type: ignore[call-overload]

    (seen,) = fake.requests()
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-secret"
    assert seen.json == CHAT
    assert abs(seen.time - time.time()) < 10

    over_http = httpx.get(fake.url + "/_fake/requests").json()
    assert [r["json"] for r in over_http] == [CHAT]
    assert over_http[0]["headers"]["authorization"] == "Bearer sk-secret"
    assert len(fake.requests()) == 1  # control endpoints are not recorded

    assert httpx.delete(fake.url + "/_fake/requests").json() == {"cleared": 1}
    assert fake.requests() == []


def test_non_json_bodies_are_recorded_as_text(fake: FakeUpstreamThread) -> None:
    response = httpx.post(fake.url + "/v1/chat/completions", content=b"not json")
    assert response.status_code == 400
    assert fake.requests()[0].text == "not json"


def test_unknown_paths_are_recorded_and_get_a_json_404(fake: FakeUpstreamThread) -> None:
    response = httpx.post(fake.url + "/v1/v1/chat/completions", json=CHAT)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    assert fake.requests()[0].path == "/v1/v1/chat/completions"
    with openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0) as sdk:
        assert sdk.models.retrieve("fake-small").id == "fake-small"


def test_recording_can_be_off_or_bounded() -> None:
    with FakeUpstreamThread(FakeSettings(record_requests=False)) as fake:
        chat(fake.url)
        assert fake.requests() == []
        assert fake.stats()["requests"] == 1
    with FakeUpstreamThread(FakeSettings(max_recorded=3)) as fake, httpx.Client() as http:
        for _ in range(10):
            http.get(fake.url + "/health")
        assert 3 <= len(fake.requests()) <= 4


def test_config_round_trips_over_http(fake: FakeUpstreamThread) -> None:
    set_config = httpx.post(fake.url + "/_fake/config", json={"completion_tokens": 4})
    assert set_config.json()["completion_tokens"] == 4
    assert httpx.get(fake.url + "/_fake/config").json()["completion_tokens"] == 4
    content = chat(fake.url).json()["choices"][0]["message"]["content"]
    assert content == "fake reply from fake-model:"

    for bad in ({"no_such_setting": 1}, {"latency_ms": "slow"}, {"chunk_tokens": 0}):
        response = httpx.post(fake.url + "/_fake/config", json=bad)
        assert response.status_code == 400, bad


def test_faults_can_be_queued_listed_and_cleared_over_http(fake: FakeUpstreamThread) -> None:
    queued = httpx.post(
        fake.url + "/_fake/faults",
        json=[{"kind": "status", "status": 503}, {"kind": "context_window"}],
    ).json()
    assert [f["kind"] for f in queued["faults"]] == ["status", "context_window"]
    assert chat(fake.url).status_code == 503
    assert [f["kind"] for f in httpx.get(fake.url + "/_fake/config").json()["faults"]] == [
        "context_window"
    ]
    httpx.delete(fake.url + "/_fake/faults")
    assert chat(fake.url).status_code == 200

    bad = httpx.post(fake.url + "/_fake/faults", json=[{"kind": "hang"}, {"kind": "nope"}])
    assert bad.status_code == 400
    assert httpx.get(fake.url + "/_fake/config").json()["faults"] == []  # all or nothing


def test_stats_count_requests_and_outcomes(fake: FakeUpstreamThread) -> None:
    with httpx.Client() as http:
        for _ in range(3):
            http.post(fake.url + "/v1/chat/completions", json=CHAT)
        http.get(fake.url + "/v1/models")
        stats = http.get(fake.url + "/_fake/stats").json()
    assert stats == {
        "requests": 4,
        "completed": 4,
        "cancelled": 0,
        "dropped": 0,
        "in_flight": 0,
        "faults": 0,
    }


def test_reset_restores_the_initial_state() -> None:
    with FakeUpstreamThread(FakeSettings(completion_tokens=5)) as fake:
        fake.configure(completion_tokens=7, chaos={"seed": 1, "status_500": 1.0})
        fake.add_fault(kind="status", status=500, times=5)
        assert chat(fake.url).status_code == 500
        httpx.post(fake.url + "/_fake/reset")
        assert fake.requests() == [] and fake.stats()["requests"] == 0
        config = httpx.get(fake.url + "/_fake/config").json()
        assert (config["completion_tokens"], config["faults"], config["chaos"]) == (5, [], None)


def test_stream_pacing_follows_ttft_and_tokens_per_second() -> None:
    settings = FakeSettings(ttft_ms=150, tokens_per_second=50, completion_tokens=6)
    with FakeUpstreamThread(settings) as fake:
        started = time.perf_counter()
        arrivals = []
        with httpx.stream(
            "POST", fake.url + "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as response:
            headers_at = time.perf_counter() - started
            for line in response.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                    "content"
                ):
                    arrivals.append(time.perf_counter() - started)
    # Only lower bounds: a busy machine can make anything slower, never faster.
    assert arrivals[0] - headers_at >= 0.15 * 0.9  # headers go out before the TTFT delay
    assert arrivals[-1] - arrivals[0] >= 5 / 50 * 0.9  # five more tokens at 50 tokens/s
    assert len(arrivals) == 6


def test_chunk_tokens_groups_tokens_per_chunk(fake: FakeUpstreamThread) -> None:
    fake.configure(chunk_tokens=4)
    with httpx.stream(
        "POST", fake.url + "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        contents = [
            json.loads(line[6:])["choices"][0]["delta"].get("content")
            for line in response.iter_lines()
            if line.startswith("data: {")
        ]
    assert [c for c in contents if c] == [
        "fake reply from fake-model:",
        " hello there hello there",
        " hello there hello there",
    ]


def test_anthropic_messages_plain_and_streamed(fake: FakeUpstreamThread) -> None:
    payload = {
        "model": "claude-x",
        "max_tokens": 100,
        "system": "be nice",
        "messages": [{"role": "user", "content": "hi there"}],
    }
    plain = httpx.post(fake.url + "/v1/messages", json=payload).json()
    assert plain["type"] == "message" and plain["stop_reason"] == "end_turn"
    assert plain["content"][0]["text"].startswith("fake reply from claude-x:")
    assert plain["usage"] == {"input_tokens": 4, "output_tokens": 12}

    with httpx.stream("POST", fake.url + "/v1/messages", json={**payload, "stream": True}) as r:
        events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    assert events.count("content_block_delta") == 12
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]

    fake.add_fault(kind="status", status=529)
    overloaded = httpx.post(fake.url + "/v1/messages", json=payload)
    assert overloaded.json()["error"]["type"] == "overloaded_error"


async def test_start_fake_serves_in_the_running_loop() -> None:
    running = await start_fake()
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(running.url + "/health")
        assert response.json() == {"status": "ok"}
        assert running.url == f"http://127.0.0.1:{running.port}"
        assert running.upstream.stats.completed == 1
    finally:
        await running.stop()


def test_command_line_announces_its_url_and_exits_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "triage.fakeupstream", "--port", "0", "--completion-tokens", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("fake upstream listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert chat(url).json()["usage"]["completion_tokens"] == 3
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        FakeSettings(latency_ms=-1)
    with pytest.raises(ValueError, match="fault kind"):
        FakeSettings(faults=[{"kind": "boom"}])
    with pytest.raises(ValueError, match="chaos"):
        FakeSettings(chaos={"seed": 1, "meteor": 0.5})
