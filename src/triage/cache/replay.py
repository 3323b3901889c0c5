"""Streams in and out of the cache: recording a stream as the client receives it, and replaying
a kept one as a well-formed stream (its chunks, a usage chunk when the client asks, the end).

The usage a stream carried is not kept in its chunks: whether a client wants it
(`stream_options`) is not part of the key, so the replay adds it from the entry when asked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from triage.accounting import Record
from triage.engine.base import Relayed

Chunk = dict[str, Any]


def entry_of(
    record: Record, *, body: dict[str, Any] | None = None, chunks: list[Chunk] | None = None
) -> dict[str, Any]:
    usage = record.usage
    group = record.outcome.group if record.outcome is not None else record.where()[0]
    return {
        "group": group,
        "cost": str(record.cost),
        "counterfactual": str(record.counterfactual),
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "body": body,
        "chunks": chunks,
    }


class Recorder:
    """Collects the chunks a stream relays, without their usage, up to `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.chunks: list[Chunk] | None = []

    def add(self, batch: Relayed) -> None:
        for item in batch:
            if self.chunks is None:
                return
            self.size += len(item) if isinstance(item, bytes) else 256
            chunk = json.loads(item) if isinstance(item, bytes) else dict(item)
            usage_only = "usage" in chunk and not chunk.get("choices")
            chunk.pop("usage", None)
            if not usage_only:
                self.chunks.append(chunk)
            if self.size > self.limit:
                self.chunks = None  # too big to keep: the stream still goes to the client

    async def wrap(
        self, chunks: AsyncIterator[Relayed], keep: Callable[[list[Chunk]], Awaitable[None]]
    ) -> AsyncIterator[Relayed]:
        async for batch in chunks:
            self.add(batch)
            if batch.last and self.chunks:
                # Accounted already (the last batch follows the ledger row): cost is known.
                await keep(self.chunks)
            yield batch


async def replay(
    chunks: list[Chunk], usage: dict[str, int] | None, finish: Callable[[], Awaitable[None]]
) -> AsyncIterator[Relayed]:
    """One write: the kept chunks, the usage chunk if asked; accounted before it goes out."""
    out = Relayed(chunks)
    if usage is not None and chunks:
        like = chunks[-1]
        out.append(
            {
                "id": like.get("id"),
                "object": like.get("object", "chat.completion.chunk"),
                "created": like.get("created"),
                "model": like.get("model"),
                "choices": [],
                "usage": usage,
            }
        )
    await finish()
    out.last = True
    yield out
