"""A lean client for the hot path of the shared state store: one pipelined connection per
event loop, commands written as they come, replies (parsed by hiredis) matched in order.

redis-py's asyncio client costs ~0.1 ms of CPU per command (a pool checkout, command packing,
retry wrappers, a task wake-up per reply); three commands a request (reserve, settle, breaker
sync) made the shared store cost well over the issue's 0.3 ms budget. Here a command is one
write and one future, resolved in order by the protocol's `data_received`; no timer per
command (a watchdog per connection). Concurrent requests share the connection and their
commands are pipelined for free.

Failure handling: a connection that fails, or a reply that does not come within `timeout`,
closes the connection and fails every command waiting on it (`ConnectionError`, which the
callers turn into `StoreDown`); the next command opens a new connection, so a replica recovers
when the store comes back without a restart. Scripts run by EVALSHA; every new connection
loads them first (a restarted server has none), and a script the server still does not know
(flushed while connected) is sent whole (EVAL, which also caches it).

Commands issued together leave in one write: a corked command (a settle, a breaker refresh
sent ahead) waits for the next command on the connection or the loop's next turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

# Server answers that mean "not available right now", not "your command is wrong".
_UNAVAILABLE = ("LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN")


def _pack(args: tuple[Any, ...]) -> bytes:
    return b"*%d\r\n%s" % (len(args), pack_args(args))


def pack_args(args: Iterable[Any]) -> bytes:
    """The bulk strings of `args`, without the array header: what callers cache for the
    arguments that repeat (a script's keys)."""
    parts = []
    for arg in args:
        data = arg if type(arg) is bytes else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """The protocol of one connection: replies resolve the waiting futures in order, right in
    `data_received` (no reader task to wake). A watchdog closes the connection when the oldest
    command has waited longer than the timeout."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.closed = False
        self.parser = hiredis.Reader(encoding="utf-8")
        self.transport: asyncio.Transport | None = None
        self.corked: list[bytes] = []
        self.loop = asyncio.get_running_loop()
        self._watch = self.loop.call_later(self._interval, self._watchdog)

    @property
    def _interval(self) -> float:
        return min(max(self.timeout / 4, 0.01), 0.25)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        return self.send_packed(_pack(args))

    def send_packed(self, command: bytes, *, cork: bool = False) -> asyncio.Future[Any]:
        """Write `command`; its reply's future. A corked command waits for the next command
        on this connection or the loop's next turn, whichever comes first, so that commands
        issued together leave in one write (and their replies come back in one read)."""
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.closed or self.transport is None:
            future.set_exception(ConnectionError("the state store connection is closed"))
            return future
        self.waiting.append((future, self.loop.time() + self.timeout))
        if cork:
            if not self.corked:
                self.loop.call_soon(self.uncork)
            self.corked.append(command)
        elif self.corked:
            self.corked.append(command)
            self.uncork()
        else:
            self.transport.write(command)
        return future

    def uncork(self) -> None:
        if self.corked and not self.closed and self.transport is not None:
            self.transport.write(b"".join(self.corked))
        self.corked.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
            while (reply := self.parser.gets()) is not False:
                future = self.waiting.popleft()[0]
                if future.done():
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_error(str(reply)))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError):
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def _watchdog(self) -> None:
        if self.closed:
            return
        if self.waiting and self.waiting[0][1] < self.loop.time():
            self.close()  # the replies are out of step now: start over
            return
        self._watch = self.loop.call_later(self._interval, self._watchdog)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._watch.cancel()
        if self.transport is not None:
            self.transport.close()
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(ConnectionError("the state store did not answer"))


def _error(message: str) -> Exception:
    if message.startswith(_UNAVAILABLE):
        return ConnectionError(message.split(" ", 1)[0])
    return RuntimeError(f"state store: {message}")


def parse_url(url: str) -> dict[str, Any]:
    """redis-py's reading of `redis://[[user]:password@]host[:port][/db]`, `rediss://…` and
    `unix://[[user]:password@]/path[?db=N]` (`db` may also be a query parameter), without
    importing redis-py: its import pulls in OpenTelemetry's SDK, psutil and cryptography
    (~40 ms and ~8 MB a process)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            "Redis URL must specify one of the following schemes (redis://, rediss://, unix://)"
        )
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items() if values}
    if parts.scheme == "unix":
        if parts.path:
            options["path"] = unquote(parts.path)
    else:
        if parts.hostname:
            options["host"] = unquote(parts.hostname)
        if parts.port:
            options["port"] = int(parts.port)
        path = parts.path.lstrip("/")
        if path and "db" not in query:
            options["db"] = int(unquote(path))
    if "db" in query:
        options["db"] = int(query["db"])
    return options


class Wire:
    """What RedisLimits and RedisStore talk to: `execute(*args)` and `register_script(text)`."""

    def __init__(self, url: str, timeout: float) -> None:
        options = parse_url(url)
        self.host = str(options.get("host", "127.0.0.1"))
        self.port = int(options.get("port", 6379))
        self.path: str | None = options.get("path")
        self.db = int(options.get("db", 0))
        self.username: str | None = options.get("username")
        self.password: str | None = options.get("password")
        self.tls = url.startswith("rediss:")
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._scripts: list[Script] = []  # loaded on every new connection

    async def execute(self, *args: Any) -> Any:
        return await self.execute_packed(_pack(args))

    async def execute_packed(self, command: bytes) -> Any:
        """Run one command already in RESP form."""
        conn = self._live() or await self._connection()
        return await conn.send_packed(command)

    def send_now(self, command: bytes, *, cork: bool = False) -> asyncio.Future[Any] | None:
        """Write one command (RESP form) at once, without waiting: its reply's future, or None
        when there is no open connection on this loop (the caller awaits `execute_packed`
        instead). Commands on the connection run in the order they are written, so a command
        sent later sees this one's effect."""
        conn = self._live()
        return None if conn is None else conn.send_packed(command, cork=cork)

    def _live(self) -> _Connection | None:
        """The open connection when it belongs to the running loop. The loop's `is_running`
        stands in for `get_running_loop()` (a getpid system call each on Python 3.11): one
        loop runs on a thread at a time, and a Wire is used from one thread."""
        conn = self._conn
        if conn is None or conn.closed or not conn.loop.is_running():
            return None
        return conn

    def register_script(self, text: str) -> Script:
        script = Script(self, text)
        self._scripts.append(script)
        return script

    async def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._opening is None or self._loop is not loop:
            self._opening, self._loop = asyncio.Lock(), loop
        async with self._opening:
            conn = self._conn
            if conn is None or conn.closed or conn.loop is not loop:
                if conn is not None:
                    conn.close()
                self._conn = conn = await asyncio.wait_for(self._open(), self.timeout)
            return conn

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(self.timeout)
        try:
            if self.path:
                await loop.create_unix_connection(lambda: conn, self.path)
            else:
                context = ssl.create_default_context() if self.tls else None
                await loop.create_connection(lambda: conn, self.host, self.port, ssl=context)
            await self._hello(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _hello(self, conn: _Connection) -> None:
        hello: list[asyncio.Future[Any]] = []
        if self.password is not None:
            user = (self.username,) if self.username else ()
            hello.append(conn.send(("AUTH", *user, self.password)))
        if self.db:
            hello.append(conn.send(("SELECT", self.db)))
        try:
            for future in hello:
                await future
        except RuntimeError:
            raise ConnectionError("the state store refused the connection's login") from None
        # A server that restarted has lost its scripts: load them before any command, so that
        # a command written behind (a settle) does not come back NOSCRIPT after a later one.
        loads = [conn.send(("SCRIPT", "LOAD", script.text)) for script in self._scripts]
        for future in loads:
            await future

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        self.close()


class Script:
    """A Lua script run by its SHA-1, sent whole when the server does not have it. Commands are
    packed from pre-encoded parts: the EVALSHA head, and the keys as the caller caches them
    (`pack_args`)."""

    def __init__(self, wire: Wire, text: str) -> None:
        self.wire = wire
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()
        self._evalsha = pack_args(("EVALSHA", self.sha))
        self._eval = pack_args(("EVAL", self.text))

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        return await self.run(pack_args(keys), len(keys), args)

    def command(self, keys: bytes, count: int, args: list[Any]) -> bytes:
        """EVALSHA with the `count` keys packed in `keys`, then `args`."""
        size = 3 + count + len(args)
        return b"*%d\r\n%s%s%s%s" % (
            size,
            self._evalsha,
            pack_args((count,)),
            keys,
            pack_args(args),
        )

    async def run(self, keys: bytes, count: int, args: list[Any]) -> Any:
        return await self.run_packed(self.command(keys, count, args))

    async def run_packed(self, command: bytes) -> Any:
        """Run a `command()`, sending the script whole when the server does not have it."""
        try:
            return await self.wire.execute_packed(command)
        except RuntimeError as exc:
            if not missing(exc):
                raise
        return await self.wire.execute_packed(self.whole(command))

    def whole(self, command: bytes) -> bytes:
        """`command` as EVAL, with the script's text instead of its SHA-1."""
        head = command.index(b"\r\n") + 2
        return command[:head] + self._eval + command[head + len(self._evalsha) :]


def missing(exc: BaseException) -> bool:
    """Whether `exc` says the server does not have the script (it restarted: send it whole)."""
    return isinstance(exc, RuntimeError) and "NOSCRIPT" in str(exc)
