"""A started stream after its first batch: what the runner hands the service to relay.

An iterator object rather than an async generator, for two reasons:
- `aclose` always gives the deployment's slot back and closes the upstream, even when the
  stream was never iterated. A short answer arrives whole in the first read (its first batch is
  also its last), and the service then only closes what follows; an async generator that never
  started runs none of its `finally` on close, which left the slot taken for good and skewed
  least-busy routing.
- one wait per upstream read: the idle/deadline timeout and the drain deadline share a single
  `asyncio.timeout` (the drain moves it to now), instead of a timeout and a generator per layer.

Each wait is its own `asyncio.timeout` entered in the task that asks for the next batch, so a
consumer that reads from another task (the Messages ping wrapper) is the one cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from triage.engine.base import Batch
from triage.engine.base import UpstreamStream as _Stream
from triage.engine.drain import Drain
from triage.errors import StreamStalled, TriageError, UpstreamTimeout
from triage.state import Store


class _Shutdown(Exception):
    """The drain deadline ended the stream (carries the error the client sees)."""

    def __init__(self, error: TriageError) -> None:
        self.error = error


class Relay:
    """The batches after the first, each bounded by the stream's deadline and by `idle`
    seconds (an upstream that stops sending without ending); never falls back."""

    __slots__ = (
        "_clock",
        "_deployment",
        "_done",
        "_drain",
        "_failed",
        "_finish_by",
        "_idle",
        "_iterator",
        "_store",
        "_upstream",
    )

    def __init__(
        self,
        upstream: _Stream,
        deployment: str,
        store: Store,
        clock: Callable[[], float],
        *,
        finish_by: float,
        idle: float,
        drain: Drain | None = None,
    ) -> None:
        self._upstream = upstream
        self._iterator = aiter(upstream)
        self._deployment = deployment
        self._store = store
        self._clock = clock
        self._finish_by = finish_by
        self._idle = idle
        self._drain = drain
        self._done = False  # released: the slot is back and the upstream closed
        self._failed = False

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> Batch:
        if self._done:
            raise StopAsyncIteration
        try:
            left = self._finish_by - self._clock()
            return await self._next(max(0.0, min(left, self._idle)), left <= self._idle)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except _Shutdown as shutdown:
            await self.aclose()  # a shutdown is not the deployment's fault
            raise shutdown.error from None
        except TriageError:
            self._failed = True  # a client that goes away is not the deployment's fault
            await self.aclose()
            raise

    async def _next(self, wait: float, deadline: bool) -> Batch:
        drain = self._drain
        if drain is None:
            try:
                async with asyncio.timeout(wait):
                    return await anext(self._iterator)
            except TimeoutError:
                raise self._timed_out(deadline) from None
        if drain.cut:
            raise _Shutdown(drain.ended())
        try:
            async with asyncio.timeout(wait) as timer:
                drain.watch(timer)  # the drain deadline moves it to now
                try:
                    return await anext(self._iterator)
                finally:
                    drain.unwatch(timer)
        except TimeoutError:
            if drain.cut:
                raise _Shutdown(drain.ended()) from None
            raise self._timed_out(deadline) from None

    def _timed_out(self, deadline: bool) -> TriageError:
        if deadline:
            return UpstreamTimeout("stream exceeded its deadline")
        return StreamStalled(f"the upstream sent nothing for {self._idle:g}s")

    async def aclose(self) -> None:
        """Close the upstream and give the slot back (once, however the stream ended)."""
        if self._done:
            return
        self._done = True
        try:
            await self._upstream.aclose()
        finally:
            self._store.release(self._deployment)
            if self._failed:
                self._store.record_failure(self._deployment, self._clock(), trips=True)
