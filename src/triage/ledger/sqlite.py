"""The SQLite ledger: one row per request in a local file, written before the request is
acknowledged.

Durability: WAL journal with ``synchronous=NORMAL`` (the default here). A commit then writes the
row into the WAL file through the OS page cache, so an acknowledged row survives the process
being killed (even ``kill -9``); it is not fsynced, so an OS crash or power loss may lose the
last few rows (the database itself stays consistent). ``synchronous="FULL"`` fsyncs the WAL on
every commit and survives power loss at the price of one fsync per request.

Checkpoints (copying the WAL back into the database file, with an fsync) never run on the
serving connection, whose commits run on the event loop: SQLite's automatic checkpoint stalled
one commit in ~150 for 5-15 ms. A thread of the ledger's own, on a connection of its own, runs
a PASSIVE checkpoint (it never blocks a writer) every CHECKPOINT_EVERY commits instead.

Money is stored as TEXT (plain decimal notation) so it round-trips exactly as ``Decimal``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from triage.ledger.rows import ADDED, COLUMNS, FIELDS, SCHEMA_VERSION, LedgerRow

if TYPE_CHECKING:
    from triage.report import Dimension, Report

_NAMES = ", ".join(FIELDS)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    + ")",
    "CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts)",
    "CREATE INDEX IF NOT EXISTS usage_key_ts ON usage (key_id, ts)",
)
_INSERT = f"INSERT INTO usage ({_NAMES}) VALUES ({', '.join('?' * len(COLUMNS))})"
_SELECT = f"SELECT {_NAMES} FROM usage WHERE ts >= ? ORDER BY ts, id"
# IS (not =) so that spend(None, ...) sums the requests made without a key.
_SPEND = "SELECT cost_usd FROM usage WHERE key_id IS ? AND ts >= ?"


def _to_db(row: LedgerRow) -> tuple[Any, ...]:
    """The row's values in FIELDS order (a test pins it), money in plain decimal notation (no
    exponent: readable in the sqlite3 shell); one tuple, ~1 µs against ~5 µs for a loop."""
    r = row
    return (
        r.ts,
        r.request_id,
        r.key_id,
        r.task,
        r.tier,
        r.route,
        r.deployment,
        r.status,
        r.prompt_tokens,
        r.completion_tokens,
        r.usage_source,
        format(r.cost_usd, "f"),
        format(r.counterfactual_usd, "f"),
        r.latency_s,
        r.ttft_s,
        int(r.stream),
        r.attempts,
        r.fallbacks,
        r.error,
    )


def _from_db(record: tuple[Any, ...]) -> LedgerRow:
    values = dict(zip(FIELDS, record, strict=True))
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
    for name, kind in ADDED:
        if name not in present:
            conn.execute(f"ALTER TABLE usage ADD COLUMN {name} {kind}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


CHECKPOINT_EVERY = 200  # commits between two background checkpoints (~3 WAL pages each)


class _Checkpointer:
    """PASSIVE checkpoints of `path`'s WAL, on a daemon thread and a connection of their own,
    each time `nudge` is called (the GIL is released while SQLite works)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done = 0  # checkpoints run so far
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                # Busy (another process checkpointing) or failing: the next nudge tries again.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
        finally:
            conn.close()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=10)


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
        shared: bool = False,
    ) -> None:
        # A commit to a file only this process writes takes microseconds: group commit runs it
        # on the event loop. `shared` (the worker processes of `serve --workers N` write one
        # file): a commit may wait for another process's lock, in SQLite's busy handler, which
        # sleeps; it runs in a thread then, and rows that finish meanwhile join the next batch.
        self.inline_commits = not shared
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        # isolation_level=None: autocommit, so each INSERT is its own committed transaction.
        # timeout: how long to wait on another process's lock (the CLI reading while we write).
        self.path = path
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
        self._checkpointer: _Checkpointer | None = None
        self._commits = 0
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal":
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see the module docstring
            self._checkpointer = _Checkpointer(str(self.path))

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
            self._committed()

    def append_many(self, rows: list[LedgerRow]) -> None:
        """Record several requests in one transaction: all committed when this returns, or none."""
        if len(rows) == 1:  # autocommit: one statement instead of three
            self.append(rows[0])
            return
        values = [_to_db(row) for row in rows]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT, values)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._committed()

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and self._checkpointer is not None:
            self._checkpointer.nudge()

    @property
    def checkpoints(self) -> int:
        """Background checkpoints run so far (0 without a WAL)."""
        return self._checkpointer.done if self._checkpointer is not None else 0

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

    def report(self, *, by: Dimension, since: float | None, key_id: str | None) -> Report:
        """The usage report, aggregated on a read-only connection of its own (never this one,
        whose lock the request path takes)."""
        from triage.usage_db import usage_report  # imports triage.report, which imports us

        return usage_report(self.path, by=by, since=since, key_id=key_id)

    def close(self) -> None:
        """Close the connection (idempotent); a clean close also checkpoints the WAL."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
