"""The lean HTTP/1.1 client that carries the native lane's plain-http calls (engine/http1.py),
against a raw loopback socket that answers byte for byte: keep-alive reuse, connections the
server closes, chunked and close-delimited bodies, answers split into tiny writes, and hostile
answers (endless headers, garbage) that must end in a mapped error rather than a hang."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.helpers import config_from, deployment, free_port
from triage.engine.base import Call, Timeouts
from triage.engine.native import NativeLane
from triage.errors import UpstreamConnectionError, UpstreamError

TIMEOUTS = Timeouts(connect=1.0, first_token=None, total=5.0)
CALL = Call("chat", {"messages": [{"role": "user", "content": "hi"}]})
REPLY = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}


def _answer(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"".join(extra)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@dataclass
class Seen:
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)


Script = Callable[[int], tuple[list[bytes], bool]]  # request number -> (writes, close after)


@asynccontextmanager
async def raw_upstream(script: Script) -> AsyncIterator[tuple[str, Seen]]:
    """A server that reads requests one after another on each connection and answers each
    with the script's writes (flushed one by one), closing when the script says so."""
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                seen.requests.append((head, body))
                writes, close = script(len(seen.requests))
                for part in writes:
                    writer.write(part)
                    await writer.drain()
                if close:
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1", seen


def _deployment(api_base: str, **params: Any) -> Any:
    entry = deployment("raw", "hosted_vllm/m", api_base)
    entry["litellm_params"].update(params)
    return config_from({"model_list": [entry]}).model_list[0]


async def test_sequential_calls_share_one_kept_alive_connection_and_send_a_valid_request() -> None:
    body = json.dumps(REPLY).encode()
    lane = NativeLane()
    async with raw_upstream(lambda n: ([_answer(body)], False)) as (base, seen):
        target = _deployment(base, api_key="sk-test-secret")
        replies = [await lane.send(target, CALL, TIMEOUTS) for _ in range(3)]
    await lane.close()
    assert [r.body for r in replies] == [REPLY] * 3
    assert seen.connections == 1
    head, sent = seen.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    assert headers["host"] == base.removeprefix("http://").removesuffix("/v1")
    assert headers["authorization"] == "Bearer sk-test-secret"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(sent)
    assert json.loads(sent)["model"] == "m" and json.loads(sent)["messages"]


async def test_a_connection_the_server_closes_is_not_reused() -> None:
    body = json.dumps(REPLY).encode()
    # The first answer says nothing about closing, and the server closes right after it.
    lane = NativeLane()
    async with raw_upstream(lambda n: ([_answer(body)], n == 1)) as (base, seen):
        target = _deployment(base)
        assert (await lane.send(target, CALL, TIMEOUTS)).body == REPLY
        for _ in range(100):  # bounded: until the client has seen the close
            await asyncio.sleep(0.01)
            if seen.connections == 1 and len(seen.requests) == 1:
                break
        await asyncio.sleep(0.05)
        assert (await lane.send(target, CALL, TIMEOUTS)).body == REPLY
    await lane.close()
    assert seen.connections == 2


async def test_connection_close_answers_get_a_fresh_connection_each_time() -> None:
    body = json.dumps(REPLY).encode()
    lane = NativeLane()
    answer = _answer(body, b"Connection: close\r\n")
    async with raw_upstream(lambda n: ([answer], True)) as (base, seen):
        target = _deployment(base)
        for _ in range(3):
            assert (await lane.send(target, CALL, TIMEOUTS)).body == REPLY
    await lane.close()
    assert seen.connections == 3


async def test_chunked_answer_in_tiny_writes_is_assembled() -> None:
    body = json.dumps(REPLY).encode()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
    )
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n"
    )
    writes = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    lane = NativeLane()
    async with raw_upstream(lambda n: (writes, False)) as (base, seen):
        target = _deployment(base)
        assert (await lane.send(target, CALL, TIMEOUTS)).body == REPLY
        assert (await lane.send(target, CALL, TIMEOUTS)).body == REPLY
    await lane.close()
    assert seen.connections == 1


async def test_close_delimited_answer_is_read_to_the_end() -> None:
    body = json.dumps(REPLY).encode()
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body
    lane = NativeLane()
    async with raw_upstream(lambda n: ([raw[:20], raw[20:]], True)) as (base, _):
        assert (await lane.send(_deployment(base), CALL, TIMEOUTS)).body == REPLY
    await lane.close()


@pytest.mark.parametrize(
    ("answer", "close"),
    [
        # Headers that never end, on a connection kept open: only the client's bound ends it.
        (b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 300_000, False),
        (b"SPDY/9 200 OK\r\n\r\n", False),  # not HTTP
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", True),  # cut short
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n", False),
    ],
)
async def test_hostile_answers_end_in_an_upstream_error(answer: bytes, close: bool) -> None:
    lane = NativeLane()
    async with raw_upstream(lambda n: ([answer], close)) as (base, _):
        with pytest.raises(UpstreamError):
            await asyncio.wait_for(lane.send(_deployment(base), CALL, TIMEOUTS), 10)
    await lane.close()


async def test_a_refused_connection_is_a_connection_error() -> None:
    lane = NativeLane()
    base = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(UpstreamConnectionError, match="could not connect"):
        await lane.send(_deployment(base), CALL, TIMEOUTS)
    await lane.close()
