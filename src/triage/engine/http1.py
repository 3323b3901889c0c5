"""A lean HTTP/1.1 client for the native lane's plain-`http://` upstreams (vLLM, llama.cpp,
Ollama, TGI on the same host or network): one pooled keep-alive connection per call, the request
written with one `write` from a head prebuilt per deployment, the answer parsed by httptools.

aiohttp's `ClientSession.post` costs about 120 µs of CPU per call; this does the same work in
about 45 µs (bench/engine_cpu.py, issue 16). TLS upstreams (the hosted providers) stay on aiohttp.

It keeps aiohttp's contract as the lane uses it: a response with `status`, `headers`,
`content_type`, `content_length`, `content.readany()`/`readexactly()`, `release()` (the
connection goes back to the pool once its answer is complete) and `close()` (it is dropped,
which stops a half-read answer upstream); failures are aiohttp's exception types, so
`native_errors.network_error` maps them as before. Nothing is read without a bound: headers stop
at `MAX_HEAD_BYTES`, a body is read only as fast as it is consumed (reading pauses past
`HIGH_WATER` buffered bytes). Idle connections are dropped after `keepalive` seconds, before the
server's own keep-alive ends; at most `limit` connections are open or opening at once.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol, cast

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one answer
HIGH_WATER = 256 * 1024  # buffered body bytes past which reading pauses
_BAD_VALUE = re.compile(r"[\r\n\x00]")


class Reader(Protocol):
    async def readany(self) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...


class Answer(Protocol):
    """What the lanes use of an upstream answer: aiohttp's ClientResponse or an
    Http1Response."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> Reader: ...
    def release(self) -> Any: ...
    def close(self) -> None: ...


class ConnectFailed(aiohttp.ClientConnectionError):
    """The upstream could not be reached (refused, unreachable, unresolvable)."""


class BadAnswer(aiohttp.ClientError):
    """The upstream's status line or headers are not HTTP/1.1 (aiohttp raises a
    ClientResponseError, also a plain ClientError to the lane)."""


def plain_route(url: str, headers: Mapping[str, str]) -> tuple[str, int, bytes] | None:
    """Host, port and request head (up to its Content-Length) for the lean client, for a plain
    `http://` URL without credentials and headers that are valid as they are; None otherwise
    (aiohttp then carries the call, and refuses what is invalid as it did)."""
    try:
        parsed = URL(url)
    except ValueError:
        return None
    if parsed.scheme != "http" or not parsed.raw_host or parsed.user or parsed.password:
        return None
    host = parsed.raw_host
    netloc = host if parsed.port == 80 else f"{host}:{parsed.port}"
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]" if parsed.port == 80 else f"[{host}]:{parsed.port}"
    named = {name.lower() for name in headers}
    if "content-length" in named or "transfer-encoding" in named:
        return None
    defaults = {"Host": netloc, "Accept": "*/*"}  # what aiohttp adds, unless configured
    lines = header_lines({k: v for k, v in defaults.items() if k.lower() not in named})
    more = header_lines(headers)
    if lines is None or more is None:
        return None
    request_line = f"POST {parsed.raw_path_qs} HTTP/1.1\r\n".encode()
    return host, parsed.port or 80, request_line + lines + more


def header_lines(headers: Mapping[str, str]) -> bytes | None:
    """`Name: value` lines, or None if one would not be a single valid header line."""
    for name, value in headers.items():
        if not name or any(c in name for c in ": \t\r\n\x00") or _BAD_VALUE.search(value):
            return None
    text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


class _Conn(asyncio.Protocol):
    """One connection and the answer being read on it (httptools callbacks)."""

    def __init__(self, pool: Http1Pool, key: tuple[str, int]) -> None:
        self.pool, self.key = pool, key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.head_size = 0
        self.header_list: list[tuple[bytes, bytes]] = []  # as sent: decoded only if asked
        self.headers_done: asyncio.Future[None] | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        done = self.headers_done
        if done is None:  # nothing asked: an idle connection the server wrote to
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if done.done():
                self._fail(aiohttp.ClientPayloadError(f"malformed answer body: {exc}"))
            else:
                self._fail(BadAnswer(f"malformed answer: {exc}"))
            return
        if not done.done():
            # Counted on what arrives while the head is incomplete: httptools buffers a
            # header until it is complete.
            self.head_size += len(data)
            if self.head_size > MAX_HEAD_BYTES:
                self._fail(BadAnswer(f"an answer's headers are over {MAX_HEAD_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool._forget(self)
        if self.complete or self.headers_done is None:
            return
        if self.headers_done.done() and self._ends_with_connection():
            self.complete = True  # an answer delimited by the end of the connection
            self._wake()
        else:
            self._fail(aiohttp.ServerDisconnectedError(), close=False)

    def _ends_with_connection(self) -> bool:
        names = {name.lower() for name, _ in self.header_list}
        return b"content-length" not in names and b"transfer-encoding" not in names

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.headers_done is not None and not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # the reading side
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException, *, close: bool = True) -> None:
        if self.error is None:
            self.error = error
        done = self.headers_done
        if done is not None and not done.done():
            done.set_exception(error)
            done.exception()  # retrieved: the caller may be gone already
        self._wake()
        if close:
            self._close()

    def _close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def take(self) -> bytes:
        """Everything buffered (reading resumes)."""
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


class Http1Response:
    """An answer being read; also its own `content` (aiohttp's StreamReader, as used here)."""

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self._open = True
        self._raw_headers = conn.header_list  # the connection starts a new list when reused
        self.status = conn.parser.get_status_code()
        self.content = self

    @functools.cached_property
    def headers(self) -> CIMultiDictProxy[str]:
        """Built only when asked for (error answers): a success needs two of them at most."""
        return CIMultiDictProxy(
            CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw_headers)
        )

    def _header(self, name: bytes) -> bytes | None:
        for key, value in self._raw_headers:
            if key.lower() == name:
                return value
        return None

    @property
    def content_type(self) -> str:
        raw = self._header(b"content-type")
        text = raw.decode("latin-1") if raw else "application/octet-stream"
        return text.partition(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        value = self._header(b"content-length")  # ASCII digits only, as the parser wants
        return int(value) if value is not None and value.isdigit() else None

    async def readany(self) -> bytes:
        conn = self._conn
        while True:
            if conn.body:
                return conn.take()
            if conn.complete:
                return b""
            if conn.error is not None:
                raise conn.error
            if conn.lost:
                raise aiohttp.ServerDisconnectedError()
            conn.waiter = asyncio.get_running_loop().create_future()
            try:
                await conn.waiter
            finally:
                conn.waiter = None

    async def readexactly(self, n: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < n:
            part = await self.readany()
            if not part:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(part)
            size += len(part)
        data = b"".join(parts)
        if size > n:  # keep the rest for the next read
            self._conn.body.appendleft(data[n:])
            self._conn.buffered += size - n
        return data[:n]

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool if the answer is
        complete and the server keeps it open, else it is dropped."""
        if self._open:
            self._open = False
            self._conn.pool._settle(self._conn)

    def close(self) -> None:
        """Drop the connection, which stops a half-read answer upstream. One whose answer was
        read to its end is clean and goes back to the pool, as aiohttp's does at the end of
        its body."""
        if not self._open:
            return
        self._open = False
        if self._conn.body:
            self._conn.pool._drop(self._conn)
        else:
            self._conn.pool._settle(self._conn)


class Http1Pool:
    """Keep-alive connections per (host, port), at most `limit` open or opening at once."""

    def __init__(self, limit: int, keepalive: float) -> None:
        self.loop = asyncio.get_running_loop()
        self._keepalive = keepalive
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._slots = asyncio.Semaphore(limit)
        self._all: set[_Conn] = set()

    async def post(
        self, host: str, port: int, head: bytes, body: bytes, connect_timeout: float | None
    ) -> Http1Response:
        """Send `head` (the request line and headers, all but Content-Length) and `body`; the
        answer once its headers are in."""
        await self._slots.acquire()
        try:
            conn = self._checkout((host, port)) or await self._connect(host, port, connect_timeout)
        except BaseException:
            self._slots.release()
            raise
        conn.headers_done = done = self.loop.create_future()
        assert conn.transport is not None
        try:
            try:
                conn.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
            except RuntimeError:  # uvloop: the transport closed under us
                raise aiohttp.ServerDisconnectedError() from None
            await done
        except BaseException:
            self._drop(conn)
            raise
        return Http1Response(conn)

    def _checkout(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            fresh = now - conn.idle_since < self._keepalive
            if fresh and not conn.lost and conn.transport and not conn.transport.is_closing():
                return conn
            conn._close()
            self._all.discard(conn)
        return None

    async def _connect(self, host: str, port: int, timeout: float | None) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, (host, port)), host, port
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(f"connect timeout to {host}:{port}") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc.strerror}") from None
        self._all.add(conn)
        return conn

    def _settle(self, conn: _Conn) -> None:
        """A connection whose answer is done with: kept if it is clean, else dropped."""
        if conn.complete and conn.keep_alive and conn.error is None and not conn.lost:
            self._checkin(conn)
        else:
            self._drop(conn)

    def _checkin(self, conn: _Conn) -> None:
        conn._reset()
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._slots.release()

    def _drop(self, conn: _Conn) -> None:
        conn._close()
        self._all.discard(conn)
        self._slots.release()

    def _forget(self, conn: _Conn) -> None:
        """A connection the server closed: out of the idle list if it is there."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._all.discard(conn)

    def close(self) -> None:
        for conn in list(self._all):
            conn._close()
        self._all.clear()
        self._idle.clear()
