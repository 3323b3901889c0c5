"""The lean HTTP/1.1 client keeps an answer's headers as the bytes the server sent and reads
only the few it needs (engine/http1.py): header names in any case, values outside ASCII, and
the headers that decide where an answer ends must all still be read as before."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.unit.test_http1 import CALL, REPLY, TIMEOUTS, _deployment, raw_upstream
from triage.config.schema import ServerSettings
from triage.engine.base import Call
from triage.engine.native import NativeLane
from triage.errors import RateLimited, UpstreamConnectionError, UpstreamError, UpstreamTooLarge

STREAM = Call("chat", {**CALL.body, "stream": True}, stream=True)


async def test_an_in_band_error_under_shouting_headers_is_recognised_as_json() -> None:
    body = json.dumps({"error": {"message": "no such model", "type": "invalid"}}).encode()
    answer = (
        b"HTTP/1.1 200 OK\r\nCONTENT-TYPE:  Application/JSON ; charset=utf-8\r\n"
        b"CONTENT-LENGTH: %d\r\n\r\n%s" % (len(body), body)
    )
    lane = NativeLane()
    async with raw_upstream(lambda n: ([answer], False)) as (base, _):
        with pytest.raises(UpstreamError) as caught:
            await asyncio.wait_for(lane.open_stream(_deployment(base), STREAM, TIMEOUTS), 10)
    await lane.close()
    # Not relayed as a stream: the JSON document's own error, read in the lane.
    assert "reported an error" in caught.value.message


async def test_a_declared_length_over_the_bound_is_refused_before_any_body_arrives() -> None:
    # Only the head is sent and the connection stays open: only the declared length, read in
    # upper case, can end this call.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCONTENT-LENGTH: 5000\r\n\r\n"
    lane = NativeLane(ServerSettings(max_response_bytes=2048))
    async with raw_upstream(lambda n: ([head], False)) as (base, _):
        with pytest.raises(UpstreamTooLarge):
            await asyncio.wait_for(lane.send(_deployment(base), CALL, TIMEOUTS), 10)
    await lane.close()


async def test_a_chunked_answer_cut_before_its_end_is_a_failure_not_a_short_answer() -> None:
    # The whole JSON arrives, but the chunked body never ends before the server hangs up:
    # an answer framed by Transfer-Encoding is not complete because the connection closed.
    body = json.dumps(REPLY).encode()
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTRANSFER-ENCODING: chunked\r\n\r\n"
        b"%x\r\n%s\r\n" % (len(body), body)
    )
    lane = NativeLane()
    async with raw_upstream(lambda n: ([answer], True)) as (base, _):
        with pytest.raises(UpstreamConnectionError):
            await asyncio.wait_for(lane.send(_deployment(base), CALL, TIMEOUTS), 10)
    await lane.close()


async def test_an_error_answers_headers_are_read_whatever_their_bytes() -> None:
    body = b'{"error": {"message": "slow down"}}'
    answer = (
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        b"X-Note: caf\xe9 \xff\r\nretry-AFTER: 7\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    lane = NativeLane()
    async with raw_upstream(lambda n: ([answer], False)) as (base, _):
        with pytest.raises(RateLimited) as caught:
            await asyncio.wait_for(lane.send(_deployment(base), CALL, TIMEOUTS), 10)
    await lane.close()
    assert caught.value.retry_after == 7
