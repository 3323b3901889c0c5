"""uvicorn's request-response cycle, with an answer's head written together with its body.

uvicorn (0.54, httptools) writes an answer's head as soon as the app sends
`http.response.start`, and its body with a second `write` when `http.response.body` comes: two
sends per answer, and two regular-expression searches per header. `OneWriteCycle` checks every
header name and value with one search each over all of them, keeps the head, and writes it
together with the first body message: one send for a JSON answer (its `content-length`
declared), and a stream's head (chunked, as uvicorn frames an answer of unknown length) leaves
with its first chunk. Anything else (a HEAD request, 204/304, a transfer-encoding set by the
app, a paused or closed transport, a message out of order) goes through uvicorn's own `send`,
which also raises its errors for a head that fails the checks. The bytes on the wire, and the
access log line, are the same as uvicorn's (tests/integration/test_one_write.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from triage.api.render import Head

# Joined with a byte each check lets through, the names (or values) are searched at once.
_NAME_JOIN = b"-"
_VALUE_JOIN = b" "
_NO_BODY_STATUS = (204, 304)


class OneWriteCycle(RequestResponseCycle):
    """See the module docstring. Built by uvicorn; `adopt` turns its cycle into this one."""

    _head: bytes | None = None

    @classmethod
    def adopt(cls, cycle: RequestResponseCycle) -> None:
        """Make `cycle` (which uvicorn built, with no attributes of its own added) one of these:
        the ASGI task it runs calls `send` through the class at each message."""
        cycle.__class__ = cls

    async def send(self, message: Any) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if self.disconnected:
                return
            if message["type"] == "http.response.body":
                self._write_with(head, message)
                return
            self.transport.write(head)  # out of order: uvicorn's own send says what is wrong
        elif not self.response_started and self._plain(message):
            self._head = self._build(message)
            if self._head is not None:
                self._log(message["status"])
                self.response_started = True
                self.waiting_for_100_continue = False
                return
        await super().send(message)

    def _plain(self, message: Any) -> bool:
        return (
            message["type"] == "http.response.start"
            and not self.flow.write_paused
            and not self.disconnected
            and self.scope["method"] != "HEAD"
            and message["status"] not in _NO_BODY_STATUS
        )

    def _log(self, status: int) -> None:
        if self.access_log:  # uvicorn's access line, as its own send writes it
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(self.scope),
                self.scope["method"],
                get_path_with_query_string(self.scope),
                self.scope["http_version"],
                status,
            )

    def _build(self, message: Any) -> bytes | None:
        """The head uvicorn would write for `message`, or None where uvicorn's own path must
        run: a transfer-encoding of the app's own, a header that fails its checks. The cycle's
        state changes only when it returns a head."""
        status = STATUS_LINE[message["status"]]
        fixed = _defaults(tuple(self.default_headers))
        if fixed is None:
            return None
        headers = message.get("headers", ())
        if type(headers) is Head and headers.intact():  # checked when built (render.py)
            lines, length, closes = headers.lines, headers.length, False
        else:
            scanned = _scan(headers)
            if scanned is None:
                return None
            lines, length, closes = scanned
        length = fixed[1] if fixed[1] is not None else length
        content = [status, fixed[0], lines]
        expected = 0 if length is None else int(length.decode())
        if closes or fixed[2]:
            self.keep_alive = False
        elif not self.keep_alive:
            content.append(b"connection: close\r\n")
        if length is None:  # a stream: chunked, as uvicorn frames an answer of unknown length
            content.append(b"transfer-encoding: chunked\r\n")
        self.chunked_encoding = length is None
        self.expected_content_length = expected
        content.append(b"\r\n")
        return b"".join(content)

    def _write_with(self, head: bytes, message: Any) -> None:
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.chunked_encoding:  # uvicorn's framing, after the head
            framed = b"%s%x\r\n%s\r\n" % (head, len(body), body) if body else head
            self.transport.write(framed if more_body else framed + b"0\r\n\r\n")
        elif len(body) > self.expected_content_length:
            self.transport.write(head)
            raise RuntimeError("Response content longer than Content-Length")
        else:
            self.expected_content_length -= len(body)
            self.transport.write(head + body)
        if more_body:
            return
        if self.expected_content_length != 0:
            raise RuntimeError("Response content shorter than Content-Length")
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


_Scan = tuple[bytes, bytes | None, bool]


def _scan(headers: Iterable[tuple[bytes, bytes]]) -> _Scan | None:
    """`headers` as lines of a head, their first content-length and whether one asks to close
    the connection; None for a transfer-encoding or a header that fails uvicorn's checks."""
    content: list[bytes] = []
    length = None
    closes = False
    for raw, value in headers:
        name = raw.lower()
        if name == b"content-length":
            length = value if length is None else length
        elif name == b"transfer-encoding":
            return None
        elif name == b"connection" and b"close" in _tokens(value):
            closes = True
        content += (name, b": ", value, b"\r\n")
    # content is [name, ": ", value, "\r\n", name, ...]
    if HEADER_RE.search(_NAME_JOIN.join(content[::4])):
        return None
    if HEADER_VALUE_RE.search(_VALUE_JOIN.join(content[2::4])):
        return None
    return b"".join(content), length, closes


# The server's default headers (date, server) change once a second: scanned once for all the
# answers of that second (a pure function of its argument, so a memo of the last few).
_defaults = lru_cache(maxsize=4)(_scan)


def _tokens(value: bytes) -> list[bytes]:
    return [token.lower().strip() for token in value.split(b",")]
