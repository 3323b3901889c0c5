"""SSE framing: `data: {json}` frames, an error event if the stream fails, always `[DONE]`.

`EventStream` closes the chunk pipeline itself when the response ends for any reason, including
a client that went away: Starlette does not close a body iterator, and leaving it to the garbage
collector would let the upstream keep generating for a client that is gone.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from triage.api.errors import sse_error
from triage.engine.base import Relayed
from triage.errors import TriageError
from triage.wire import dumps

DONE = b"data: [DONE]\n\n"


async def frames(batches: AsyncIterator[Relayed]) -> AsyncGenerator[bytes, None]:
    """One write per batch: the chunks an upstream read delivered leave together."""
    try:
        try:
            async for batch in batches:
                yield b"".join(
                    [
                        b"data: " + (chunk if type(chunk) is bytes else dumps(chunk)) + b"\n\n"
                        for chunk in batch
                    ]
                )
        except TriageError as err:
            yield sse_error(err)
        yield DONE
    finally:
        closer = getattr(batches, "aclose", None)
        if closer is not None:
            await closer()


class EventStream(StreamingResponse):
    def __init__(self, body: AsyncGenerator[bytes, None], headers: dict[str, str]) -> None:
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._body.aclose()
