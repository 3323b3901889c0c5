"""One in-flight request (Call) and the machinery that delivers its stream: pacing, stream faults
and deliberately broken connections.

Frames are built up front by the protocol modules; this module decides *when* they go out. With
no delays and no fault the whole stream leaves in one write, which keeps the benchmark baseline
cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from triage.fakeupstream.settings import FakeSettings, Fault

# (bytes on the wire, generated tokens it carries) — tokens drive tokens_per_second pacing.
Frame = tuple[bytes, int]
STREAM_FAULTS = frozenset({"cut_stream", "stream_error"})


@dataclass(eq=False)
class Call:
    """Everything a protocol handler needs about the request it is answering."""

    request: web.Request
    body: dict[str, Any]
    settings: FakeSettings
    fault: Fault | None
    protocol: str
    stream: bool
    number: int
    started: float
    responding: float = 0.0
    first_frame: float | None = None
    finished: float | None = None
    dropped: bool = False

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) else ""

    def durations_ns(self) -> tuple[int, int, int, int]:
        """(total, load, prompt_eval, eval) in ns, measured: latency, time to first frame,
        generation. Each is at least 1 so clients never divide by zero."""
        end = self.finished or time.perf_counter()
        first = self.first_frame or end
        responding = self.responding or self.started
        parts = (end - self.started, responding - self.started, first - responding, end - first)
        total, load, prompt, gen = (max(1, int(p * 1e9)) for p in parts)
        return total, load, prompt, gen


def drop_connection(call: Call, *, reset: bool = False) -> web.Response:
    """Close the client's TCP connection without finishing the response.

    `reset` sends an RST (SO_LINGER 0) instead of a FIN. The returned response is never
    delivered: aiohttp's write fails on the closed transport and it moves on quietly.
    """
    call.dropped = True
    transport = call.request.transport
    if transport is not None:
        if reset:
            sock = transport.get_extra_info("socket")
            # No socket to tune (e.g. a test transport): a FIN is close enough then.
            with contextlib.suppress(AttributeError, OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
    return web.Response(status=499)


async def hang(call: Call) -> web.StreamResponse:
    """Never answer; the client's disconnect cancels this (aiohttp handler_cancellation)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover


async def send_stream(
    call: Call,
    frames: Sequence[Frame],
    finish: Callable[[], bytes],
    error_frame: Callable[[str], bytes],
    content_type: str,
) -> web.StreamResponse:
    """Deliver `frames` then `finish()`, honouring ttft, tokens_per_second and stream faults."""
    settings, fault = call.settings, call.fault
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache"}
    if fault is None and settings.ttft_ms <= 0 and settings.tokens_per_second <= 0:
        call.first_frame = time.perf_counter()
        body = b"".join(f[0] for f in frames)
        call.finished = time.perf_counter()
        return web.Response(body=body + finish(), headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(call.request)
    if fault is not None and fault.kind in STREAM_FAULTS:
        await _paced(call, response, frames[: fault.after_chunks])
        if fault.kind == "cut_stream":
            drop_connection(call)
            return response
        call.finished = time.perf_counter()
        await response.write(error_frame(fault.message or "fake upstream stream error"))
        return response
    await _paced(call, response, frames)
    call.finished = time.perf_counter()
    await response.write(finish())
    return response


async def _paced(call: Call, response: web.StreamResponse, frames: Sequence[Frame]) -> None:
    """Token j goes out at ttft + j / tokens_per_second; frames due together share a write."""
    loop = asyncio.get_running_loop()
    settings = call.settings
    start = loop.time() + settings.ttft_ms / 1000
    per_token = 1 / settings.tokens_per_second if settings.tokens_per_second > 0 else 0.0
    pending: list[bytes] = []
    emitted = 0
    for data, tokens in frames:
        emitted += tokens
        delay = start + max(0, emitted - 1) * per_token - loop.time()
        if delay > 0.0005:
            if pending:
                await response.write(b"".join(pending))
                pending.clear()
            await asyncio.sleep(delay)
        if call.first_frame is None:
            call.first_frame = time.perf_counter()
        pending.append(data)
    if pending:
        await response.write(b"".join(pending))
    if call.first_frame is None:
        call.first_frame = time.perf_counter()


async def pause_before_answer(call: Call, tokens: int) -> None:
    """A non-streamed answer arrives when the whole generation would have finished."""
    settings = call.settings
    if settings.ttft_ms > 0:
        await asyncio.sleep(settings.ttft_ms / 1000)
    call.first_frame = time.perf_counter()
    if settings.tokens_per_second > 0 and tokens > 1:
        await asyncio.sleep((tokens - 1) / settings.tokens_per_second)
    call.finished = time.perf_counter()
