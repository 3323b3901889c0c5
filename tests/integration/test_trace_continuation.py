"""A request that carries the caller's W3C trace context continues that trace (issue 15): the
request span is a child of the caller's span, and the upstream call carries the same trace on.
A malformed `traceparent` is ignored (a new trace starts, the request is served), and a caller's
"not sampled" is obeyed. Spans are exported for real to the receiver of test_traces."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import serve
from tests.integration.test_traces import KEYS, PROMPT, Receiver, _config, _requests
from tests.integration.test_traces import receiver as receiver  # noqa: F401 (the fixture)
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def _chat(url: str, headers: dict[str, str], **extra: Any) -> httpx.Response:
    body = {"model": "cloud", "messages": [{"role": "user", "content": PROMPT}], **extra}
    headers = {"authorization": f"Bearer {KEYS['quiet']}", **headers}
    response = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("stream", [False, True])
def test_a_caller_trace_is_continued_to_the_upstream(
    fake: FakeUpstreamThread, receiver: Receiver, stream: bool
) -> None:
    caller = {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=opaque,other=1"}
    with serve(create_app(_config(fake, receiver.url))) as url:
        _chat(url, caller, stream=stream)
    [request] = _requests(receiver)
    assert request["trace_id"] == TRACE and request["parent"] == SPAN
    [attempt] = [s for s in receiver.spans if s["parent"] == request["span_id"]]
    assert attempt["trace_id"] == TRACE
    [sent] = fake.requests()
    assert sent.headers["traceparent"] == f"00-{TRACE}-{attempt['span_id']}-01"
    assert sent.headers["tracestate"] == "vendor=opaque,other=1"


MALFORMED = [
    "garbage",
    f"00-{'0' * 32}-{SPAN}-01",  # an all-zero trace id is invalid
    f"00-{TRACE}-{'0' * 16}-01",  # so is an all-zero parent span
    f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
    f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex is not W3C
    f"00-{TRACE}-{SPAN}-01\u00e9",
    f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
    "00-" + "a" * 4000 + f"-{SPAN}-01",
    f"00-{TRACE}-{SPAN}",
]


def test_a_malformed_traceparent_is_ignored_and_a_new_trace_starts(
    fake: FakeUpstreamThread, receiver: Receiver
) -> None:
    with serve(create_app(_config(fake, receiver.url))) as url:
        for value in MALFORMED:
            with httpx.Client() as client:
                # Sent as raw bytes: httpx would refuse some of these values as str.
                body = {"model": "cloud", "messages": [{"role": "user", "content": PROMPT}]}
                response = client.post(
                    url + "/v1/chat/completions",
                    json=body,
                    headers=[
                        (b"authorization", f"Bearer {KEYS['quiet']}".encode()),
                        (b"traceparent", value.encode("utf-8")),
                        (b"tracestate", b"vendor=x"),
                    ],
                    timeout=20,
                )
            assert response.status_code == 200, (value, response.text)
    requests = _requests(receiver)
    assert len(requests) == len(MALFORMED)
    assert all(r["parent"] == "" and r["trace_id"] != TRACE for r in requests)
    assert len({r["trace_id"] for r in requests}) == len(MALFORMED)  # each a trace of its own
    sent = [r.headers["traceparent"] for r in fake.requests()]
    assert len(sent) == len(MALFORMED) and not any(TRACE in s for s in sent)
    assert all("vendor=x" not in r.headers.get("tracestate", "") for r in fake.requests())


def test_a_caller_that_does_not_sample_is_obeyed_and_the_trace_still_propagates(
    fake: FakeUpstreamThread, receiver: Receiver
) -> None:
    with serve(create_app(_config(fake, receiver.url))) as url:
        _chat(url, {"traceparent": f"00-{TRACE}-{SPAN}-00"})
    assert _requests(receiver) == []  # nothing recorded for an unsampled trace
    [sent] = fake.requests()
    assert sent.headers["traceparent"].startswith(f"00-{TRACE}-")
    assert sent.headers["traceparent"].endswith("-00")
