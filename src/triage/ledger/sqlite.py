"""The usage ledger: one SQLite row per request, written before the request is acknowledged.

Owns the ``usage`` table's schema and every read and write of it. Durability: WAL journal with
``synchronous=NORMAL`` (the default here). A commit then writes the row into the WAL file
through the OS page cache, so an acknowledged row survives the process being killed (even
``kill -9``); it is not fsynced, so an OS crash or power loss may lose the last few rows (the
database itself stays consistent). ``synchronous="FULL"`` fsyncs the WAL on every commit and
survives power loss at the price of one fsync per request.

Money is stored as TEXT (plain decimal notation) so it round-trips exactly as ``Decimal``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 2  # 2: the `error` column (what failed); version 1 files gain it on open

_COLUMNS = (
    ("ts", "REAL NOT NULL"),
    ("request_id", "TEXT NOT NULL"),
    ("key_id", "TEXT"),
    ("task", "TEXT NOT NULL"),
    ("tier", "TEXT NOT NULL"),
    ("route", "TEXT NOT NULL"),
    ("deployment", "TEXT NOT NULL"),
    ("status", "INTEGER NOT NULL"),
    ("prompt_tokens", "INTEGER NOT NULL"),
    ("completion_tokens", "INTEGER NOT NULL"),
    ("usage_source", "TEXT NOT NULL"),
    ("cost_usd", "TEXT NOT NULL"),
    ("counterfactual_usd", "TEXT NOT NULL"),
    ("latency_s", "REAL NOT NULL"),
    ("ttft_s", "REAL"),
    ("stream", "INTEGER NOT NULL"),
    ("attempts", "INTEGER NOT NULL"),
    ("fallbacks", "INTEGER NOT NULL"),
    ("error", "TEXT NOT NULL DEFAULT ''"),
)
# Columns added after version 1, added in place to an older file when it is opened.
_ADDED = (("error", "TEXT NOT NULL DEFAULT ''"),)
_FIELDS = tuple(name for name, _ in _COLUMNS)  # the order of LedgerRow's fields (a test pins it)
_NAMES = ", ".join(_FIELDS)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    + ")",
    "CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts)",
    "CREATE INDEX IF NOT EXISTS usage_key_ts ON usage (key_id, ts)",
)
_INSERT = f"INSERT INTO usage ({_NAMES}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT = f"SELECT {_NAMES} FROM usage WHERE ts >= ? ORDER BY ts, id"
# IS (not =) so that spend(None, ...) sums the requests made without a key.
_SPEND = "SELECT cost_usd FROM usage WHERE key_id IS ? AND ts >= ?"


@dataclass(frozen=True)
class LedgerRow:
    """One request as the ledger records it. ``route`` and ``deployment`` are where the last
    attempt went ("" when none was made); ``error`` is the failure's kind ("" when it
    succeeded; see ``triage.errors.error_kind``)."""

    ts: float
    request_id: str
    key_id: str | None
    task: str
    tier: str
    route: str
    deployment: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    cost_usd: Decimal
    counterfactual_usd: Decimal
    latency_s: float
    ttft_s: float | None
    stream: bool
    attempts: int
    fallbacks: int
    error: str = ""

    def __post_init__(self) -> None:
        for name in ("cost_usd", "counterfactual_usd"):
            value = getattr(self, name)
            # A float here would be stored inexactly and break every later sum.
            if not isinstance(value, Decimal) or not value.is_finite():
                raise TypeError(f"LedgerRow.{name} must be a finite Decimal, got {value!r}")


def _to_db(row: LedgerRow) -> tuple[Any, ...]:
    # Read field by field: dataclasses.astuple deep-copies every value (~20 µs a row).
    values = [getattr(row, name) for name in _FIELDS]
    for index, value in enumerate(values):
        if isinstance(value, Decimal):
            values[index] = format(value, "f")  # no exponent: readable in the sqlite3 shell
        elif isinstance(value, bool):
            values[index] = int(value)
    return tuple(values)


def _from_db(record: tuple[Any, ...]) -> LedgerRow:
    values = dict(zip(_FIELDS, record, strict=True))
    values["cost_usd"] = Decimal(values["cost_usd"])
    values["counterfactual_usd"] = Decimal(values["counterfactual_usd"])
    values["stream"] = bool(values["stream"])
    return LedgerRow(**values)


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema, or bring a version-1 file up to this one (inside a transaction)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in range(SCHEMA_VERSION + 1):
        raise RuntimeError(
            f"ledger schema version {version} is not supported (expected {SCHEMA_VERSION})"
        )
    for statement in _SCHEMA:
        conn.execute(statement)
    present = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
    for name, kind in _ADDED:
        if name not in present:
            conn.execute(f"ALTER TABLE usage ADD COLUMN {name} {kind}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class Ledger:
    """The usage ledger on one SQLite connection, shared by threads under a lock.

    ``append`` commits before it returns (autocommit, one INSERT per row), so a row is durable as
    described in the module docstring by the time the request is acknowledged.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        timeout: float = 5.0,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        # isolation_level=None: autocommit, so each INSERT is its own committed transaction.
        # timeout: how long to wait on another process's lock (the CLI reading while we write).
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=timeout
        )
        self._lock = threading.Lock()
        try:
            self._setup(synchronous)
        except BaseException:
            self._conn.close()
            raise

    def _setup(self, synchronous: str) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # IMMEDIATE takes the write lock up front, so workers creating or migrating the schema
        # at the same moment wait on the busy timeout instead of failing with "database is
        # locked", and each sees the other's finished work.
        conn.execute("BEGIN IMMEDIATE")
        try:
            _migrate(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @property
    def journal_mode(self) -> str:
        """The journal mode SQLite actually uses ("wal"; ":memory:" databases report "memory")."""
        with self._lock:
            return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

    def append(self, row: LedgerRow) -> None:
        """Record one request; committed when this returns."""
        values = _to_db(row)
        with self._lock:
            self._conn.execute(_INSERT, values)

    def append_many(self, rows: list[LedgerRow]) -> None:
        """Record several requests in one transaction: all committed when this returns, or none."""
        values = [_to_db(row) for row in rows]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT, values)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def rows(self, since: float | None = None) -> list[LedgerRow]:
        """Every row with ``ts >= since`` (all rows when None), oldest first."""
        start = float("-inf") if since is None else since
        with self._lock:
            records = self._conn.execute(_SELECT, (start,)).fetchall()
        return [_from_db(record) for record in records]

    def spend(self, key_id: str | None, since: float | None = None) -> Decimal:
        """Exact sum of ``cost_usd`` for one key (None: keyless requests) with ``ts >= since``."""
        start = float("-inf") if since is None else since
        # Summed here, not with SQL SUM(): SQLite would add the TEXT amounts as binary floats.
        with self._lock:
            costs = self._conn.execute(_SPEND, (key_id, start)).fetchall()
        return sum((Decimal(cost) for (cost,) in costs), Decimal(0))

    def close(self) -> None:
        """Close the connection (idempotent); a clean close also checkpoints the WAL."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GroupCommit:
    """Group commit for a server: the rows submitted during one event-loop turn share one
    transaction.

    Each request still waits for its own row to be committed before it is acknowledged, so the
    kill -9 guarantee holds; but requests that finish together pay for one commit between them
    (a commit is most of an append's cost) instead of one each.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._rows: list[LedgerRow] = []
        self._waiters: list[asyncio.Future[None]] = []

    def submit(self, row: LedgerRow) -> asyncio.Future[None] | None:
        """Queue `row`; the future resolves once it is committed. Outside an event loop the row
        is committed before this returns (and None comes back)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.ledger.append(row)
            return None
        if not self._rows:
            loop.call_soon(self.flush)
        waiter: asyncio.Future[None] = loop.create_future()
        self._rows.append(row)
        self._waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        if not rows:
            return
        try:
            self.ledger.append_many(rows)
        except Exception as exc:  # every waiting request fails with it, none is acknowledged
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
