"""SSE framing: `data: {json}` frames, an error event if the stream fails, always `[DONE]`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from triage.api.errors import sse_error
from triage.engine.base import Chunk
from triage.errors import TriageError

DONE = b"data: [DONE]\n\n"


async def frames(chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    except TriageError as err:
        yield sse_error(err)
    yield DONE
