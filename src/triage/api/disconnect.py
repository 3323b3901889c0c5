"""A client that goes away ends its request: the handler is cancelled, and the upstream call
with it.

Without this a non-stream handler keeps awaiting the upstream for a client that is gone (and
the request is billed as a 200). `unless_gone` runs the handler in the request's own task and
lets one small watcher task wait for `http.disconnect`; on it, the handler's task is cancelled.
The service's own `except asyncio.CancelledError` then records the request as 499, with the cost
actually incurred (none, when nothing came back), and the runner releases the deployment.
Under `triage serve` there is no watcher at all: the server's protocol (api/server.py) puts a
`Hangup` on each request's scope and calls it when the connection is lost before the answer is
complete, so a request pays for one small object instead of a timer and, past WATCH_AFTER, a
task. Under any other ASGI server the watcher does the job: it starts only once the handler has
run for WATCH_AFTER seconds, so a request answered sooner never pays for a task.
Streams get the same from `sse.EventStream` once their first chunk is out; this covers the wait
before it. It is also where a body upload the client abandons ends: quietly, as a 499.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

T = TypeVar("T")
WATCH_AFTER = 0.02  # seconds before a handler's disconnect watcher starts
CLIENT_CLOSED = 499  # nginx's "client closed request": nothing is sent, it is for the logs


HANGUP = "triage.hangup"  # the scope key of a request's Hangup


class Hangup:
    """Set by the server on a request's scope: `callback` (set by whoever waits on the request)
    is called once if the client's connection is lost before the response is complete; `gone`
    stays set for whoever starts waiting later."""

    __slots__ = ("callback", "gone")

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None
        self.gone = False

    def watch(self, leave: Callable[[], None]) -> Callable[[], None]:
        """Call `leave` on a hangup (at once: the client is gone already); returns what stops
        that (a watch around this one gets its callback back)."""
        if self.gone:  # the next await of whoever watches ends their work
            leave()
        outer, self.callback = self.callback, leave

        def restore() -> None:
            self.callback = outer

        return restore

    def fire(self) -> None:
        self.gone = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


def hangup_of(scope: Scope) -> Hangup | None:
    hangup: Hangup | None = scope.get(HANGUP)
    return hangup


def gone() -> Response:
    """What a handler returns for a client that left (uvicorn drops it unsent)."""
    return Response(status_code=CLIENT_CLOSED)


async def unless_gone(request: Request, work: Awaitable[T]) -> T | None:
    """`await work`, or None once the client has disconnected (`work` is then cancelled).

    Call it after the request body was read: every message the server delivers from then on
    is the disconnect (or, once the response is complete, the end of the cycle)."""
    task = asyncio.current_task()
    assert task is not None
    left = False

    def leave() -> None:
        nonlocal left
        left = True
        task.cancel()  # delivered at the await where the handler is waiting now

    stop = on_hangup(request.scope, request.receive, leave, after=WATCH_AFTER)
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise  # the server is shutting down, not our client leaving
        task.uncancel()
        return None
    finally:
        stop()


def on_hangup(
    scope: Scope, receive: Receive, leave: Callable[[], None], *, after: float = 0.0
) -> Callable[[], None]:
    """Call `leave` once if the client goes away; returns what stops watching. Through the
    server's `Hangup` where there is one; elsewhere a task reads `receive` for the disconnect,
    starting `after` seconds from now (0: at once). Call it once the request body was read."""
    hangup = hangup_of(scope)
    if hangup is not None:
        return hangup.watch(leave)
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        leave()

    def start() -> None:
        nonlocal watcher
        watcher = asyncio.create_task(watch())

    timer = asyncio.get_running_loop().call_later(after, start) if after > 0 else None
    if timer is None:
        start()

    def stop() -> None:
        if timer is not None:
            timer.cancel()
        if watcher is not None:
            watcher.cancel()

    return stop
