"""A stream's batches on their way to the client: what goes out for each upstream chunk, and
what the stream has carried (usage, characters of text) for accounting once it ends; `relay`
is the whole stream, from the engine's first batch to the accounted end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from triage.accounting import Record, usage_from
from triage.engine.base import Batch, Relayed
from triage.engine.runner import StreamStart
from triage.errors import TriageError, error_kind, http_status
from triage.metering import Usage
from triage.normalize import StreamNormalizer


@dataclass
class Tally:
    """What a stream has carried so far: the upstream's usage, if any, and characters of text."""

    usage: Any = None
    produced: int = 0


def convert(
    normalizer: StreamNormalizer, batch: Batch, tally: Tally
) -> tuple[Relayed, TriageError | None]:
    """A batch as it goes to the client, and the error of a chunk that failed to decode (the
    chunks before it are in the batch returned). A native lane's batch goes out as its own
    frames; its chunks are still read for accounting."""
    out, failure = _convert(normalizer, batch, tally)
    return (out if batch.native is None else Relayed(batch.native)), failure


def _convert(
    normalizer: StreamNormalizer, batch: Batch, tally: Tally
) -> tuple[Relayed, TriageError | None]:
    out = Relayed()
    raw = batch.raw
    index, size = 0, len(batch)
    while index < size:
        data = None
        if raw is not None:
            data = raw[index]
            # Only their text differs from the last raw chunk's: no decoding. Several left go
            # as a run (one pass over them all), the last one by itself.
            if index + 1 < size and (run := normalizer.relay_run(raw, index)) is not None:
                out += run[0]
                tally.produced += run[1]
                index += len(run[0])
                continue
            same = normalizer.relay_like_last(data) if index + 1 == size else None
            if same is not None:
                out.append(same[0])
                tally.produced += same[1]
                index += 1
                continue
        try:
            chunk = batch.chunk(index)
        except TriageError as err:
            return out, err
        tally.usage = chunk.get("usage") or tally.usage
        relayed, chars = normalizer.relay(chunk, data)
        tally.produced += chars
        if relayed is not None:
            out.append(relayed)
        index += 1
    return out, None


def stream_usage(usage: Any, prompt_tokens: int, produced_chars: int) -> Usage:
    return usage_from(
        {"usage": usage} if usage else None,
        estimate=lambda: (prompt_tokens, produced_chars // 4),
    )


def counted_usage(prompt_tokens: int, produced_chars: int) -> dict[str, int]:
    completion = produced_chars // 4
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


async def relay(
    start: StreamStart,
    record: Record,
    wants_usage: bool,
    prompt_tokens: int,
    finish: Callable[[int], Awaitable[None]],
) -> AsyncIterator[Relayed]:
    """The stream's writes. The first item is an empty `Relayed` (the caller takes it: from
    then on the cleanup below is armed, even if nothing more is read). `finish(status)` accounts
    the request (its ledger row committed) before the last write, which ends the stream; a
    stream that ends otherwise (an error, the client gone) is accounted as it unwinds, and the
    upstream is released at once however it ended."""
    first, outcome = start.first, start.outcome
    status, finished, tally = 499, False, Tally()
    normalizer = StreamNormalizer(outcome.deployment, keep_usage=wants_usage)
    iterator = aiter(start.rest)
    try:
        yield Relayed()
        batch: Batch | None = first
        out = Relayed()
        while batch is not None:
            out, failure = convert(normalizer, batch, tally)
            if failure is not None:
                if out:
                    yield out  # what came before the bad chunk still goes out
                raise failure
            if batch.last:
                break  # the upstream ended in this read: `out` is the last write
            if out:
                yield out
            out = Relayed()
            batch = await anext(iterator, None)
        if wants_usage and not normalizer.usage_sent and first.native is None:
            # The backend ignored stream_options.include_usage: Triage counts instead.
            counted = counted_usage(prompt_tokens, tally.produced)
            out.append(normalizer.usage_chunk(tally.usage or counted))
        status = 200
        record.usage = stream_usage(tally.usage, prompt_tokens, tally.produced)
        finished = True
        await finish(status)
        out.last = True
        yield out
    except TriageError as err:
        status, record.error = http_status(err), error_kind(err)
        raise
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()  # releases the upstream at once, however the relay ended
        if not finished:
            record.usage = stream_usage(tally.usage, prompt_tokens, tally.produced)
            await finish(status)
