"""The Messages API's event streams: a chat stream translated to Messages events, an Anthropic
deployment's own events relayed as they came, and `ping` events while the stream waits.

Anthropic sends `ping` periodically; so does Triage, every `server.sse_ping_interval` seconds
(10 by default) that pass without anything to send: between chunks, and before the first one.
A stream whose first chunk takes longer than the interval starts at once with pings (status 200,
without the `x-triage-*` headers, which are not known yet), so that proxies and clients with
idle timeouts keep the connection; a failure before the first chunk is then an `error` event,
as one after it is. A stream that starts sooner answers as before (an error keeps its status).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from triage.engine.base import Relayed
from triage.errors import TriageError
from triage.protocols.anthropic_output import error_object
from triage.protocols.anthropic_stream import Event, MessageEvents
from triage.service import Answer, StreamAnswer
from triage.wire import dumps, loads

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
Frames = AsyncGenerator[bytes, None]


def encode(events: list[Event]) -> bytes:
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n"
        for event in events
    )


async def pinging(
    chunks: AsyncIterator[Relayed], every: float
) -> AsyncGenerator[Relayed | None, None]:
    """The batches, and None each time `every` seconds pass without one. The next batch is
    awaited in a task of its own, so that a ping does not cancel it."""
    iterator = aiter(chunks)
    pending: asyncio.Task[Relayed | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator, None))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            batch, pending = pending.result(), None
            if batch is None:
                return
            yield batch
    finally:
        if pending is not None:  # the stream was left mid-wait: stop the read before closing
            pending.cancel()
            await asyncio.wait({pending})


async def translated(answer: StreamAnswer, events: MessageEvents, every: float) -> Frames:
    """The chat stream as Messages events; a failure after the start is an `error` event."""
    chunks = answer.chunks
    batches = pinging(chunks, every)
    try:
        yield encode(events.start())
        try:
            async for batch in batches:
                if batch is None:
                    yield PING
                    continue
                out: list[Event] = []
                for chunk in batch:
                    out += events.feed(chunk if isinstance(chunk, dict) else loads(chunk))
                if out:
                    yield encode(out)
        except TriageError as err:
            yield encode(events.fail(err))
            return
        yield encode(events.finish())
    finally:
        await batches.aclose()
        await chunks.aclose()  # type: ignore[attr-defined]


async def native(answer: StreamAnswer, events: MessageEvents, every: float) -> Frames:
    """An Anthropic deployment's own events, as they came; a failure is an `error` event."""
    chunks = answer.chunks
    batches = pinging(chunks, every)
    try:
        try:
            async for batch in batches:
                if batch is None:
                    yield PING
                    continue
                yield b"".join(item for item in batch if isinstance(item, bytes))
        except TriageError as err:
            yield encode(events.fail(err))
    finally:
        await batches.aclose()
        await chunks.aclose()  # type: ignore[attr-defined]


async def late(
    task: asyncio.Task[Answer | StreamAnswer],
    every: float,
    request_id: str,
    frames: Callable[[StreamAnswer], Awaitable[Frames]],
) -> Frames:
    """A stream whose answer was not there within `every` seconds: pings until it is, then
    `frames(answer)`; a failure meanwhile is an `error` event."""
    taken = False
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=every)
            if not task.done():
                yield PING
        try:
            answer = task.result()
        except TriageError as err:
            yield encode([error_object(err, request_id)])
            return
        assert isinstance(answer, StreamAnswer)  # a stream request gets a stream
        taken = True
        async for frame in await frames(answer):
            yield frame
    finally:
        await _settle(task, taken)


async def _settle(task: asyncio.Task[Answer | StreamAnswer], taken: bool) -> None:
    """The client went away: cancel the pending answer, or close one nobody will read."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if taken or task.cancelled() or task.exception() is not None:
        return
    answer = task.result()
    if isinstance(answer, StreamAnswer):
        await answer.chunks.aclose()  # type: ignore[attr-defined]
