"""Graceful drain: what a server does between SIGTERM and its exit.

On SIGTERM the server starts draining: `/health/ready` answers 503 at once, and after
`server.drain_delay` seconds (default 0) uvicorn stops accepting connections and waits for the
open ones. Requests and streams in flight go on until `server.drain_timeout` seconds after the
signal; a stream still running then is ended here with an error event and `[DONE]` (raised as
a `ServerBusy` from its relay, so every wire format ends it its own well-formed way and its
ledger row is written), never cut silently. Then the ledger is flushed and the process exits.

The stream's wait for its next upstream batch is the only place the deadline reaches: each wait
registers its `asyncio.timeout` (engine/relaying.py), which the deadline moves to now. A second
SIGTERM (or SIGINT) skips the delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from triage.errors import ServerBusy

log = logging.getLogger("triage.drain")
Handler = Callable[[int, FrameType | None], Any]


class Drain:
    def __init__(self, timeout: float, delay: float = 0.0) -> None:
        self.timeout = timeout
        self.delay = delay
        self.draining = False  # SIGTERM seen: not ready for new work
        self.cut = False  # the deadline passed: streams still running are ended
        self._timers: set[asyncio.Timeout] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self) -> None:
        """Start draining (idempotent); streams are cut `timeout` seconds from now."""
        if self.draining:
            return
        self.draining = True
        self._loop = asyncio.get_running_loop()
        self._loop.call_later(self.timeout, self.end_streams)
        log.warning("draining: not ready; streams still running in %gs are ended", self.timeout)

    def end_streams(self) -> None:
        """The deadline: every stream waiting for its upstream ends now, the others at their
        next wait."""
        self.cut = True
        loop = asyncio.get_running_loop()
        if self._timers:
            log.warning("drain deadline: ending %d stream(s) still running", len(self._timers))
        for timer in list(self._timers):
            timer.reschedule(loop.time())

    def watch(self, timer: asyncio.Timeout) -> None:
        """A stream's wait for its upstream: the drain deadline moves `timer` to now (and the
        stream, seeing `cut`, ends with `ended()`)."""
        self._timers.add(timer)

    def unwatch(self, timer: asyncio.Timeout) -> None:
        self._timers.discard(timer)

    def ended(self) -> ServerBusy:
        """What a stream ended by the drain deadline raises."""
        return ServerBusy(
            f"the server is shutting down: this stream was ended {self.timeout:g}s after "
            "the signal (server.drain_timeout)",
            code="shutting_down",
            retry_after=1,
        )

    def watch_sigterm(self) -> None:
        """Chain a SIGTERM handler in front of the server's own (uvicorn's, which stops the
        server): it starts draining, and passes the signal on after `delay` seconds. Only on
        the main thread (not in tests that run a server in a thread)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError):  # not the main thread
            previous = signal.getsignal(signal.SIGTERM)
            if callable(previous):
                signal.signal(signal.SIGTERM, self._handler(loop, previous))

    def _handler(self, loop: asyncio.AbstractEventLoop, previous: Handler) -> Handler:
        signalled = False

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            nonlocal signalled
            loop.call_soon_threadsafe(self.begin)
            if signalled or self.delay <= 0:
                previous(sig, frame)
            else:
                loop.call_soon_threadsafe(loop.call_later, self.delay, previous, sig, None)
            signalled = True

        return on_sigterm
