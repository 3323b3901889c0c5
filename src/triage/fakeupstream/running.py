"""Running a FakeUpstream on a real loopback socket: in the current event loop (start_fake) or
in a background thread with its own loop (FakeUpstreamThread) for synchronous tests and demos.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from triage.fakeupstream.server import FakeUpstream
from triage.fakeupstream.settings import FakeSettings, Fault
from triage.fakeupstream.state import RecordedRequest

# Hanging handlers are cancelled this soon on stop, instead of aiohttp's default 60 s.
SHUTDOWN_TIMEOUT_S = 0.25


@dataclass
class RunningFake:
    upstream: FakeUpstream
    host: str
    port: int
    runner: web.AppRunner

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningFake:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_fake(
    host: str = "127.0.0.1",
    port: int = 0,
    settings: FakeSettings | None = None,
    *,
    upstream: FakeUpstream | None = None,
) -> RunningFake:
    """Serve a FakeUpstream in the running loop; port 0 picks a free port."""
    upstream = upstream or FakeUpstream(settings)
    runner = web.AppRunner(
        upstream.app(),
        access_log=None,  # logging every request would dominate the benchmark baseline
        handler_cancellation=True,  # a client disconnect cancels its handler (hang, streams)
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    return RunningFake(upstream=upstream, host=host, port=bound_port, runner=runner)


class FakeUpstreamThread:
    """A FakeUpstream served from a daemon thread; use as a context manager."""

    def __init__(
        self, settings: FakeSettings | None = None, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.upstream = FakeUpstream(settings)
        self.host = host
        self.port = port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> FakeUpstreamThread:
        if self._thread is not None:
            raise RuntimeError("fake upstream thread already started")
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("fake upstream did not start listening in time")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            running = loop.run_until_complete(
                start_fake(self.host, self.port, upstream=self.upstream)
            )
        except BaseException as exc:  # handed to the starting thread, which re-raises it
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self.port, self.url = running.port, running.url
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(running.stop())
            _cancel_leftovers(loop)
            loop.close()

    def __enter__(self) -> FakeUpstreamThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Thread-safe delegates: FakeUpstream guards its state with locks.

    def configure(self, **settings: Any) -> FakeSettings:
        return self.upstream.configure(**settings)

    def add_fault(self, **fault: Any) -> Fault:
        return self.upstream.add_fault(**fault)

    def requests(self) -> list[RecordedRequest]:
        return self.upstream.recorded()

    def clear(self) -> None:
        self.upstream.clear_requests()

    def stats(self) -> dict[str, int]:
        return self.upstream.stats_dict()

    def reset(self) -> None:
        self.upstream.reset()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
