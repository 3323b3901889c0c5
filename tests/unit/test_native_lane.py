"""The native lane's pieces: lane selection, the SSE decoder, error mapping, and stream edge
cases the fake upstream cannot produce (served byte for byte from a raw loopback socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import config_from, deployment
from triage.config import Config
from triage.engine.base import Call, Timeouts
from triage.engine.lanes import Lanes, lane_name
from triage.engine.native import NativeLane, SSEDecoder
from triage.engine.native_errors import ErrorInfo, inband_error, retry_after, status_error
from triage.engine.sse import plain_chunks
from triage.errors import (
    BadRequest,
    ContentPolicyViolation,
    ContextWindowExceeded,
    RateLimited,
    TriageError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

TIMEOUTS = Timeouts(connect=1.0, first_token=None, total=5.0)
STREAM = Call("chat", {"messages": [{"role": "user", "content": "hi"}]}, stream=True)


def _config(global_lane: str = "auto", **info: Any) -> Config:
    return config_from(
        {
            "triage": {"lane": global_lane, "ledger": {"enabled": False}},
            "model_list": [
                deployment("vllm", "hosted_vllm/llama", "http://127.0.0.1:9/v1", **info),
                deployment("claude", "anthropic/claude-3-5-haiku"),
            ],
        }
    )


@pytest.mark.parametrize(
    ("global_lane", "info", "expected"),
    [
        ("auto", {}, ["native", "litellm"]),
        ("native", {}, ["native", "litellm"]),
        ("litellm", {}, ["litellm", "litellm"]),
        ("litellm", {"lane": "native"}, ["native", "litellm"]),
        ("auto", {"lane": "litellm"}, ["litellm", "litellm"]),
    ],
)
def test_lane_follows_the_deployment_then_the_global_setting_then_the_protocol(
    global_lane: str, info: dict[str, str], expected: list[str]
) -> None:
    config = _config(global_lane, **info)
    assert [lane_name(config, d) for d in config.model_list] == expected


def test_forced_lane_carries_every_deployment() -> None:
    config = _config()
    forced = Lanes(config, force="litellm")
    assert all(forced.for_deployment(d) is forced.litellm for d in config.model_list)
    auto = Lanes(config)
    assert auto.for_deployment(config.model_list[0]) is auto.native


def test_sse_decoder_handles_split_reads_crlf_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b': keep-alive\n\nevent: chunk\ndata: {"a"') == []
    assert decoder.feed(b":1}\r\n\r\ndata:x\ndata: y\n\nid: 3\n") == [b'{"a":1}', b"x\ny"]
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.flush() == [b"[DONE]"]


def _reference_sse(stream: bytes) -> list[bytes]:
    """The SSE rules for `data`, applied to the whole stream at once, line by line."""
    events, data = [], []
    for line in stream.split(b"\n"):
        line = line.removesuffix(b"\r")
        if not line:
            if data:
                events.append(b"\n".join(data))
            data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        events.append(b"\n".join(data))
    return events


SSE_PIECES = [
    b'data: {"n":1}\n\n',
    b"data: x\n",
    b"data:y\n",
    b"data:  two spaces\n",
    b"\n",
    b": comment\n",
    b"\r\n",
    b"event: e\n",
    b"data: [DONE]\n\n",
]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(SSE_PIECES), max_size=12),
    cuts=st.lists(st.integers(0, 200), max_size=4),
)
def test_sse_decoder_matches_the_sse_rules_however_the_bytes_are_split(
    pieces: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(pieces)
    decoder = SSEDecoder()
    events: list[bytes] = []
    start = 0
    for cut in sorted(c for c in cuts if c <= len(stream)):
        events += decoder.feed(stream[start:cut])
        start = cut
    events += decoder.feed(stream[start:])
    events += decoder.flush()
    assert events == _reference_sse(stream)


EVENT_PIECES = [b"{", b"}", b'"error"', b"[DONE]", b"\n", b"x", b'"a":1', b" "]


def _walk(events: list[bytes]) -> tuple[list[bytes], bool] | None:
    """The native lane's per-event rule: chunks up to [DONE]; None where an event needs a look
    inside (an `"error"` member, or not an object)."""
    chunks: list[bytes] = []
    for data in events:
        if data.startswith(b"[DONE]"):
            return chunks, True
        if b'"error"' in data or data[:1] != b"{":
            return None
        chunks.append(data)
    return chunks, False


_EVENT_BODY = st.lists(st.sampled_from(EVENT_PIECES), max_size=6).map(b"".join)
_EVENT = st.one_of(st.just(b"[DONE]"), _EVENT_BODY.map(lambda b: b"{" + b), _EVENT_BODY)


@settings(max_examples=500, deadline=None)
@given(events=st.lists(_EVENT, max_size=8))
def test_plain_chunk_shortcut_agrees_with_the_per_event_rule(events: list[bytes]) -> None:
    fast = plain_chunks(events)
    if fast is None:
        return  # the lane then walks the events one by one
    walked = _walk(events)
    assert walked is not None and walked[0] == fast and walked[0]
    assert walked[1] == (len(fast) < len(events))  # [DONE] came last, nothing after it


def test_plain_chunk_shortcut_takes_the_usual_read() -> None:
    chunk = b'{"choices":[{"index":0,"delta":{"content":"hi"}}]}'
    assert plain_chunks([chunk, chunk, b"[DONE]"]) == [chunk, chunk]
    assert plain_chunks([chunk, b'{"error":{"message":"m"}}']) is None
    assert plain_chunks([chunk, b"[DONE]", chunk]) is None
    assert plain_chunks([b"[DONE]"]) is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": {"code": "context_length_exceeded", "message": "x"}},
            ContextWindowExceeded,
        ),
        (
            400,
            {"object": "error", "message": "maximum context length is 8192"},
            ContextWindowExceeded,
        ),
        (400, {"error": {"type": "exceed_context_size_error", "code": 400}}, ContextWindowExceeded),
        (400, {"error": {"code": "content_filter", "message": "no"}}, ContentPolicyViolation),
        (400, {"error": {"message": "temperature must be <= 2"}}, BadRequest),
        (422, "not json at all", BadRequest),
        (401, {"error": {"message": "bad key sk-123"}}, UpstreamRejected),
        (404, {}, UpstreamRejected),
        (307, {}, UpstreamRejected),
        (429, {}, RateLimited),
        (500, {}, UpstreamError),
        (503, {}, UpstreamUnavailable),
        (504, {}, UpstreamTimeout),
    ],
)
def test_status_and_body_map_onto_the_error_tree(
    status: int, body: Any, expected: type[TriageError]
) -> None:
    config = _config()
    info = ErrorInfo.parse(body)
    error = status_error(config.model_list[0], status, info, {}, "sk-123")
    assert type(error) is expected
    assert "vllm-1" in error.message and "sk-123" not in error.message


def test_bad_request_keeps_one_short_scrubbed_line_of_the_upstream_message() -> None:
    message = "key sk-123 cannot use top_k\nTraceback (most recent call last):\n" + "x" * 500
    info = ErrorInfo.parse({"error": {"message": message}})
    error = status_error(_config().model_list[0], 400, info, {}, "sk-123")
    assert error.message == "deployment `vllm-1` rejected the request: key *** cannot use top_k"


def test_retry_after_reads_seconds_http_dates_and_milliseconds() -> None:
    assert retry_after({"Retry-After": "2.5"}) == 2.5
    assert retry_after({"Retry-After": "Thu, 01 Jan 1970 00:00:30 GMT"}, now=lambda: 10.0) == 20.0
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({}) is None


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"error": {"type": "rate_limit_error", "message": "slow down"}}, RateLimited),
        ({"error": {"code": 400, "message": "prompt is too long"}}, ContextWindowExceeded),
        ({"error": "model crashed"}, UpstreamError),
    ],
)
def test_in_band_errors_map_by_their_code(
    document: dict[str, Any], expected: type[TriageError]
) -> None:
    assert type(inband_error(_config().model_list[0], document, None)) is expected


@asynccontextmanager
async def raw_upstream(answer: bytes) -> AsyncIterator[str]:
    """A socket that reads one request and answers with exactly `answer`, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await reader.readexactly(length)  # unread input would turn our FIN into a RST
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1"


def _deployment(api_base: str) -> Any:
    return config_from({"model_list": [deployment("raw", "hosted_vllm/m", api_base)]}).model_list[0]


CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


async def test_close_delimited_stream_without_done_is_reported_as_cut() -> None:
    lane = NativeLane()
    async with raw_upstream(SSE_HEAD + CHUNK + CHUNK) as base:
        stream = await lane.open_stream(_deployment(base), STREAM, TIMEOUTS)
        received = []
        with pytest.raises(UpstreamConnectionError, match="stream cut"):
            async for batch in stream:
                received.extend(batch)
        await stream.aclose()
    await lane.close()
    assert len(received) == 2


async def test_chunks_from_one_read_come_as_one_batch() -> None:
    lane = NativeLane()
    async with raw_upstream(SSE_HEAD + CHUNK * 3 + b"data: [DONE]\n\n") as base:
        stream = await lane.open_stream(_deployment(base), STREAM, TIMEOUTS)
        batches = [batch async for batch in stream]
        await stream.aclose()
    await lane.close()
    assert [len(batch) for batch in batches] == [3]


async def test_in_stream_error_event_raises_the_mapped_error() -> None:
    error = b'event: error\ndata: {"error":{"code":"rate_limit_exceeded","message":"m"}}\n\n'
    lane = NativeLane()
    async with raw_upstream(SSE_HEAD + CHUNK + error) as base:
        stream = await lane.open_stream(_deployment(base), STREAM, TIMEOUTS)
        # The chunk that came in the same read as the error still reaches the client.
        assert [chunk["choices"] for chunk in await anext(aiter(stream))]
        with pytest.raises(RateLimited):
            await anext(aiter(stream))
        await stream.aclose()
    await lane.close()


async def test_json_error_answer_to_a_stream_request_raises_before_any_chunk() -> None:
    body = b'{"error":{"message":"This model\'s maximum context length is 4096 tokens"}}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    lane = NativeLane()
    async with raw_upstream(answer) as base:
        with pytest.raises(ContextWindowExceeded):
            await lane.open_stream(_deployment(base), STREAM, TIMEOUTS)
    await lane.close()


async def test_malformed_reply_is_an_upstream_error() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n[1]"
    lane = NativeLane()
    async with raw_upstream(answer) as base:
        with pytest.raises(UpstreamError, match="malformed answer"):
            await lane.send(_deployment(base), Call("chat", {"messages": []}), TIMEOUTS)
    await lane.close()


async def test_deployment_without_api_base_or_known_default_is_rejected() -> None:
    config = config_from({"model_list": [deployment("x", "hosted_vllm/m")]})
    lane = NativeLane()
    with pytest.raises(UpstreamRejected, match="no api_base"):
        await lane.send(config.model_list[0], Call("chat", {"messages": []}), TIMEOUTS)
    await lane.close()
