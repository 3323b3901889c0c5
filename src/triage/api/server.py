"""The HTTP server's own bounds on clients: what uvicorn leaves unlimited.

uvicorn 0.54 with httptools reads request headers of any size and number, never times out a
client that trickles its headers or its body, and answers `limit_concurrency` with plain text.
`BoundedProtocol` is its httptools protocol plus:

- the header section capped at `server.max_header_bytes` and `server.max_headers` (431);
- headers due within `server.header_timeout` of the request's first byte (of the connection,
  for its first request): late ones get a 408, a connection that sent nothing is just closed;
- the body due within `server.body_timeout` of the end of the headers: a late one gets a 408
  while no answer has started (the app then sees a disconnect), and the connection is closed;
- at most `server.max_connections` open connections: one over the cap gets a 503 once its
  headers are in (its header deadline still holds while they trickle);
- a `Hangup` on every request's scope, fired when the connection is lost before the answer is
  complete: how a handler learns that its client left without a watcher task (disconnect.py).

Every refusal is an OpenAI-shaped JSON error with `connection: close`. Header limits are
counted on the bytes received, because httptools buffers a header until it is complete.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import httptools
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from triage.api.cycle import OneWriteCycle
from triage.api.disconnect import HANGUP, Hangup, hangup_of
from triage.api.errors import error_body
from triage.config.schema import ServerSettings
from triage.errors import (
    HeadersTooLarge,
    RequestTimeout,
    ServerBusy,
    TriageError,
    http_status,
)
from triage.wire import dumps


@dataclass(frozen=True)
class Bounds:
    """The `server.*` settings the protocol enforces (plain values: picklable for workers)."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def of(cls, settings: ServerSettings) -> Bounds:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
        )


def server_options(settings: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` that apply the bounds."""
    protocol = partial(BoundedProtocol, bounds=Bounds.of(settings))
    # uvicorn's own deadline is a backstop: streams are ended at drain_timeout (engine/drain.py)
    # with an error event, and this leaves them time to be written and recorded.
    backstop = math.ceil(settings.drain_timeout + DRAIN_MARGIN)
    return {
        "http": cast("type[asyncio.Protocol]", protocol),
        "timeout_graceful_shutdown": backstop,
        # uvicorn's X-Forwarded-For rewrite of scope["client"] is one more ASGI layer on every
        # request (~2% of a plain request's CPU) for a value nothing in Triage reads.
        "proxy_headers": False,
    }


DRAIN_MARGIN = 5.0  # seconds past server.drain_timeout before uvicorn cancels what is left


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the refusal is on the protocol."""


def raw_error(err: TriageError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 answer carrying `err` in OpenAI shape, closing the connection."""
    body = dumps(error_body(err))
    head = [STATUS_LINE[http_status(err)]]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    if err.retry_after is not None:
        head.append(b"retry-after: %d\r\n" % max(1, round(err.retry_after)))
    head.append(b"content-type: application/json\r\n")
    head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(head) + body


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, timing and connection bounds."""

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        bounds: Bounds,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.bounds = bounds
        self._awaiting_headers = True
        self._received = 0  # bytes received since the request began, while its headers are due
        self._header_bytes = 0  # the request line and headers parsed so far
        self._header_count = 0
        # One lazy timer per connection: re-arming moves `_deadline` only, and the timer, when
        # it fires early, sleeps on to the deadline (two timers per request cost more).
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._late: Callable[[], None] = self._headers_late
        self._refusal: TriageError | None = None
        self._over_cap = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._over_cap = len(self.connections) > self.bounds.max_connections
        self._arm(self.bounds.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and not cycle.response_complete:
            hangup = hangup_of(cycle.scope)  # type: ignore[arg-type]
            if hangup is not None:
                hangup.fire()  # the handler waiting on this request ends now (disconnect.py)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused or timed out: what still arrives is not read
        self._unset_keepalive_if_required()
        if self._awaiting_headers:
            self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        # httptools keeps an unfinished header to itself: while the headers are still due, what
        # was received is what it holds.
        if self._awaiting_headers and self._received > self.bounds.max_header_bytes:
            self._refuse(HeadersTooLarge(self._too_large()))

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[HANGUP] = Hangup()  # type: ignore[literal-required]
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm(self.bounds.header_timeout, self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > self.bounds.max_headers:
            self._stop(HeadersTooLarge(f"more than {self.bounds.max_headers} request headers"))
        if self._header_bytes > self.bounds.max_header_bytes:
            self._stop(HeadersTooLarge(self._too_large()))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = False
        if self._over_cap:
            self._stop(
                ServerBusy(
                    f"the server is at its limit of {self.bounds.max_connections} connections",
                    retry_after=1,
                )
            )
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            OneWriteCycle.adopt(self.cycle)
        self._arm(self.bounds.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = True
        self._received = self._header_bytes = self._header_count = 0
        super().on_message_complete()

    # Refusals

    def _too_large(self) -> str:
        return f"request headers over {self.bounds.max_header_bytes} bytes"

    def _stop(self, err: TriageError) -> None:
        self._refusal = err
        raise _Refused

    def _refuse(self, err: TriageError) -> None:
        """Answer `err` (unless an earlier answer on this connection is still going out)."""
        previous = self.cycle
        if previous is None or previous.response_complete:
            self.transport.write(raw_error(err, self.server_state.default_headers))
        self._close()

    def _headers_late(self) -> None:
        if self._received == 0 and self.cycle is None:
            self._close()  # connected and never spoke: nothing to answer
        else:
            self._refuse(RequestTimeout(f"request headers took over {self._seconds('header')}"))

    def _body_late(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            # The app is waiting for the rest of the body: it gets a disconnect instead, and
            # whatever it answers is dropped, because this answer goes first.
            cycle.disconnected = True
            cycle.message_event.set()
            err = RequestTimeout(f"the request body took over {self._seconds('body')}")
            self.transport.write(raw_error(err, self.server_state.default_headers))
        self._close()

    def _seconds(self, which: str) -> str:
        value = self.bounds.header_timeout if which == "header" else self.bounds.body_timeout
        return f"{value:g}s (server.{which}_timeout)"

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        deadline = self.loop.time() + delay
        self._deadline, self._late = deadline, callback
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._expire)

    def _disarm(self) -> None:
        self._deadline = None  # a pending timer finds nothing due

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:  # re-armed since: sleep on
            self._timer = self.loop.call_at(deadline, self._expire)
            return
        self._deadline = None
        self._late()

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self) -> None:
        self._stop_timer()
        if not self.transport.is_closing():
            self.transport.close()
