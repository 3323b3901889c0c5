"""Fault injection in the fake upstream: queued faults, magic model names, header overrides and
seeded chaos, observed the way a real client (the openai SDK, httpx) observes them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from triage.fakeupstream import FakeSettings, FakeUpstreamThread

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello there"}]}


def ask(client: openai.OpenAI, model: str = "fake-model", **extra: Any) -> str | None:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello there"}], **extra
    )
    return reply.choices[0].message.content


def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_429_fault_carries_retry_after_and_is_one_shot(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="status", status=429, retry_after=1)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert ask(client)  # the fault was consumed
    assert fake.stats()["faults"] == 1


def test_queued_faults_apply_in_order(fake: FakeUpstreamThread, client: openai.OpenAI) -> None:
    fake.add_fault(kind="status", status=500)
    fake.add_fault(kind="status", status=503, message="try later")
    with pytest.raises(openai.InternalServerError) as first:
        ask(client)
    with pytest.raises(openai.InternalServerError) as second:
        ask(client)
    assert (first.value.status_code, second.value.status_code) == (500, 503)
    assert "try later" in second.value.message
    assert ask(client)


def test_fault_filters_and_repeats(fake: FakeUpstreamThread, client: openai.OpenAI) -> None:
    fake.add_fault(kind="status", status=500, model="other-model", times=2)
    assert ask(client)  # a different model does not consume it
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(client, model="other-model")
    assert ask(client, model="other-model")


def test_raw_body_fault_is_sent_verbatim(fake: FakeUpstreamThread) -> None:
    fake.add_fault(kind="status", status=502, body="<html>bad gateway</html>")
    response = httpx.post(fake.url + "/v1/chat/completions", json=CHAT)
    assert (response.status_code, response.text) == (502, "<html>bad gateway</html>")
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("how", ["fault", "model"])
def test_hang_is_cancelled_by_client_timeout_and_counted(
    fake: FakeUpstreamThread, how: str
) -> None:
    if how == "fault":
        fake.add_fault(kind="hang")
    model = "hang" if how == "model" else "fake-model"
    with (
        openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0, timeout=0.3) as sdk,
        pytest.raises(openai.APITimeoutError),
    ):
        ask(sdk, model=model)
    wait_for(lambda: fake.stats()["cancelled"] == 1)
    assert fake.stats()["in_flight"] == 0
    assert fake.stats()["completed"] == 0


def test_abandoned_stream_is_counted_as_cancelled(fake: FakeUpstreamThread) -> None:
    fake.configure(tokens_per_second=20)
    with httpx.stream(
        "POST", fake.url + "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as r:
        next(r.iter_lines())  # read the first frame, then hang up mid-stream
    wait_for(lambda: fake.stats()["cancelled"] == 1)
    assert fake.stats()["completed"] == 0 and fake.stats()["in_flight"] == 0


def test_cut_stream_leaves_the_sdk_with_an_incomplete_stream(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="cut_stream", after_chunks=3)
    received = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
        for chunk in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            received.append(chunk)
    assert len(received) == 3
    assert all(c.choices[0].finish_reason is None for c in received)
    wait_for(lambda: fake.stats()["dropped"] == 1)


def test_cut_stream_on_plain_request_closes_without_response(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="cut_stream")
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    assert ask(client)


def test_connection_reset_fails_the_request(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="connection_reset")
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    assert fake.stats()["dropped"] == 1


def test_context_window_fault_uses_openai_code(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="context_window")
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length" in caught.value.message


def test_content_policy_fault_uses_policy_code(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="content_policy")
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client)
    assert caught.value.code == "content_policy_violation"
    assert "content_filter" in caught.value.message


def test_stream_error_arrives_as_an_error_event(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="stream_error", after_chunks=2, message="engine fell over")
    with pytest.raises(openai.APIError, match="engine fell over"):
        list(
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )


def test_magic_model_names_fail_with_their_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, model="fail-503")
    assert caught.value.status_code == 503
    with pytest.raises(openai.RateLimitError):
        ask(client, model="fail-429")
    assert ask(client, model="failure-is-not-magic")


def test_header_overrides_apply_to_that_request_only(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    short = ask(client, extra_headers={"x-fake-completion-tokens": "3"})
    assert short == "fake reply from"
    assert len((ask(client) or "").split()) == 12

    started = time.perf_counter()
    ask(client, extra_headers={"x-fake-latency-ms": "200"})
    assert time.perf_counter() - started >= 0.2

    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, extra_headers={"x-fake-fault": "context_window"})
    assert caught.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        ask(client, extra_headers={"x-fake-fault": '{"kind": "status", "status": 404}'})


def test_bad_override_header_is_rejected(fake: FakeUpstreamThread) -> None:
    response = httpx.post(
        fake.url + "/v1/chat/completions", json=CHAT, headers={"x-fake-latency-ms": "soon"}
    )
    assert response.status_code == 400
    assert "x-fake-latency-ms" in response.json()["error"]["message"]


def test_slow_fault_delays_only_one_request(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.add_fault(kind="slow", latency_ms=200)
    started = time.perf_counter()
    ask(client)
    slow = time.perf_counter() - started
    started = time.perf_counter()
    ask(client)
    assert slow >= 0.2 > time.perf_counter() - started


def _statuses(url: str, count: int) -> list[int]:
    with httpx.Client() as http:
        return [
            http.post(url + "/v1/chat/completions", json=CHAT).status_code for _ in range(count)
        ]


def test_chaos_with_a_fixed_seed_replays_the_same_sequence(fake: FakeUpstreamThread) -> None:
    chaos = {"seed": 7, "status_500": 0.3, "status_429": 0.2}
    fake.configure(chaos=chaos)
    first = _statuses(fake.url, 40)
    fake.configure(chaos=chaos)  # re-posting restarts the RNG
    assert _statuses(fake.url, 40) == first
    assert {200, 429, 500} == set(first)
    fake.configure(chaos={**chaos, "seed": 8})
    assert _statuses(fake.url, 40) != first

    with FakeUpstreamThread(FakeSettings(chaos=chaos)) as other:
        assert _statuses(other.url, 40) == first


def test_invalid_faults_are_rejected(fake: FakeUpstreamThread) -> None:
    with pytest.raises(ValueError, match="fault kind"):
        fake.add_fault(kind="explode")
    with pytest.raises(ValueError, match="unknown fault field"):
        fake.add_fault(kind="hang", colour="red")
    with pytest.raises(ValueError, match="add up"):
        fake.configure(chaos={"status_500": 0.8, "hang": 0.5})
