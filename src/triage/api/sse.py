"""SSE framing: `data: {json}` frames, an error event if the stream fails, always `[DONE]`.

`EventStream` is Triage's own streaming response rather than Starlette's StreamingResponse, for
two reasons measured on the relay path:
- `[DONE]` goes out in the same ASGI message (one socket write) as the last chunks and the end
  of the body;
- a client that goes away is noticed by the server's `Hangup` (disconnect.py), or elsewhere by
  one small watcher task, that cancels the relay, instead of an anyio task group per response.
Either way the chunk pipeline is closed when the response ends for any reason, including a
client that went away: leaving it to the garbage collector would let the upstream keep
generating for a client that is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from triage.api.disconnect import on_hangup
from triage.api.errors import sse_error
from triage.api.render import raw_headers
from triage.engine.base import Relayed
from triage.errors import TriageError
from triage.wire import dumps

DONE = b"data: [DONE]\n\n"
_START, _BETWEEN, _END = b"data: ", b"\n\ndata: ", b"\n\n"
_CONTENT_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")


async def frames(batches: AsyncIterator[Relayed]) -> AsyncGenerator[bytes, None]:
    """One frame group per batch (one write); a failure becomes an error event. The stream's
    last write ends with `[DONE]`: the last batch's own when the service marks it."""
    try:
        try:
            async for batch in batches:
                if batch.last:
                    yield _frames(batch, _END + DONE) if batch else DONE
                    return
                if batch:
                    yield _frames(batch, _END)
        except TriageError as err:
            yield sse_error(err) + DONE
            return
        yield DONE
    finally:
        closer = getattr(batches, "aclose", None)
        if closer is not None:
            await closer()


def _frames(batch: Relayed, end: bytes) -> bytes:
    """A batch's `data:` frames, then `end`. Relayed bytes (most of a stream) are joined as
    they are; only when the batch holds a chunk to encode is each item looked at."""
    try:
        data = _BETWEEN.join(cast("list[bytes]", batch))
    except TypeError:  # a dict among them
        data = _BETWEEN.join([item if type(item) is bytes else dumps(item) for item in batch])
    return b"".join((_START, data, end))


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        pipeline: AsyncIterator[Any] | None = None,
    ) -> None:
        """`pipeline`: what `body` reads from (the service's relay), closed at the end too: a
        body generator that never started (the client left while the headers were being
        sent) runs no `finally` of its own, so the upstream, the deployment slot, the
        reservation and the ledger row would wait for the garbage collector."""
        self.status_code = 200
        self.background = None
        self.raw_headers = raw_headers(headers, (_CONTENT_TYPE,))  # as init_headers would
        self._body = body
        self._pipeline = pipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "gone": False}

        def leave() -> None:
            if not state["done"]:
                state["gone"] = True
                task.cancel()

        stop = on_hangup(scope, receive, leave)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for frame in self._body:
                if frame.endswith(DONE):  # the last write: it ends the response too
                    state["done"] = True
                    await send({"type": "http.response.body", "body": frame, "more_body": False})
                    break
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            else:
                state["done"] = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["gone"]:
                raise
            task.uncancel()  # the client left: nothing more to send, and nothing went wrong
        finally:
            state["done"] = True
            stop()
            await self._body.aclose()
            closer = getattr(self._pipeline, "aclose", None)
            if closer is not None:
                await closer()  # a no-op when the body's own finally closed it
