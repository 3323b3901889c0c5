"""A client that goes away ends its request: the handler is cancelled, and the upstream call
with it.

Without this a non-stream handler keeps awaiting the upstream for a client that is gone (and
the request is billed as a 200). `unless_gone` runs the handler in the request's own task and
lets one small watcher task wait for `http.disconnect`; on it, the handler's task is cancelled.
The service's own `except asyncio.CancelledError` then records the request as 499, with the cost
actually incurred (none, when nothing came back), and the runner releases the deployment.
The watcher starts only once the handler has run for WATCH_AFTER seconds: a request answered
sooner (most, with a local backend) never pays for a task, and one that takes longer is where a
client leaving costs something.
Streams get the same from `sse.EventStream` once their first chunk is out; this covers the wait
before it. It is also where a body upload the client abandons ends: quietly, as a 499.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

T = TypeVar("T")
WATCH_AFTER = 0.02  # seconds before a handler's disconnect watcher starts
CLIENT_CLOSED = 499  # nginx's "client closed request": nothing is sent, it is for the logs


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
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        task.cancel()  # delivered at the await where the handler is waiting now

    def start() -> None:
        nonlocal watcher
        watcher = asyncio.create_task(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER, start)
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise  # the server is shutting down, not our client leaving
        task.uncancel()
        return None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
