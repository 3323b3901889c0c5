"""The SQLite ledger: one row per request in a local file, written before the request is
acknowledged.

Durability: WAL journal with ``synchronous=NORMAL`` (the default here). A commit then writes the
row into the WAL file through the OS page cache, so an acknowledged row survives the process
being killed (even ``kill -9``); it is not fsynced, so an OS crash or power loss may lose the
last few rows (the database itself stays consistent). ``synchronous="FULL"`` fsyncs the WAL on
every commit and survives power loss at the price of one fsync per request.

Checkpoints (copying the WAL back into the database file, with an fsync) never run on the
serving connection, whose commits run on the event loop: SQLite's automatic checkpoint stalled
one commit in ~150 for 5-15 ms. A thread of the ledger's own, on a connection of its own,
checkpoints every CHECKPOINT_EVERY commits instead: first PASSIVE (it never blocks a writer)
for the bulk, then RESTART for the frames committed meanwhile. A passive checkpoint alone never
let the WAL start over under steady load (SQLite rewinds the WAL only when a commit begins with
every frame copied back, and one always landed during the checkpoint), so the file grew by
every commit's pages for good (13.5 KB a request at one client: 136 MB after 10,000), and a
commit into fresh file pages cost 65 us instead of 28 us. RESTART holds SQLite's write lock
while it copies those few frames and waits (at most RESTART_WAIT) for readers; a commit meeting
it gets `LedgerBusy` and is retried on a later loop turn like any locked file's (20,000
back-to-back commits: one in 100 waited, the slowest 8 ms), and the next commit writes from the
WAL's start again.

Commits run on the event loop (group commit: `triage.ledger.commit`) and never wait there: the
serving connection's busy timeout is 0, so a file another process holds locked (the workers of
`serve --workers N` share one file) raises `LedgerBusy` at once, nothing written, and the group
commit tries the same rows again on a later loop turn.

A batch of up to INSERT_ROWS rows is one multi-row INSERT in autocommit mode: one statement, one
transaction (a larger batch is several inside BEGIN/COMMIT). That steps SQLite once per batch
instead of three times plus once per row.

Money is stored as TEXT (plain decimal notation) so it round-trips exactly as ``Decimal``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from triage.ledger.rows import ADDED, COLUMNS, FIELDS, SCHEMA_VERSION, LedgerBusy, LedgerRow

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
INSERT_ROWS = 32  # rows per INSERT statement: 19 values each, under SQLite's 999-variable floor
_VALUES = f"({', '.join('?' * len(COLUMNS))})"
# _INSERTS[n] inserts n rows (n = 1..INSERT_ROWS); the connection's statement cache keeps them.
_INSERTS = ("",) + tuple(
    f"INSERT INTO usage ({_NAMES}) VALUES " + ", ".join([_VALUES] * n)
    for n in range(1, INSERT_ROWS + 1)
)
_SELECT = f"SELECT {_NAMES} FROM usage WHERE ts >= ? ORDER BY ts, id"
# IS (not =) so that spend(None, ...) sums the requests made without a key.
_SPEND = "SELECT cost_usd FROM usage WHERE key_id IS ? AND ts >= ?"


_NAN = float("nan")  # binds as NULL (SQLite stores a NaN as NULL), without the adapter lookup


def _money(amount: Decimal) -> str:
    """Plain decimal notation, never an exponent (readable in the sqlite3 shell): `str` when it
    gives that (a third of `format`'s cost), `format(..., "f")` otherwise."""
    text = str(amount)
    return format(amount, "f") if "E" in text or "e" in text else text


def _to_db(row: LedgerRow) -> tuple[Any, ...]:
    """The row's values in FIELDS order (a test pins it); one tuple, ~1 µs against ~5 µs for a
    loop. A missing ttft binds as NaN, which SQLite stores as NULL: binding None costs ~3k
    instructions in the sqlite3 module's adapter lookup (two failed attribute lookups)."""
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
        _money(r.cost_usd),
        _money(r.counterfactual_usd),
        r.latency_s,
        _NAN if r.ttft_s is None else r.ttft_s,
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
# How long the checkpointer's RESTART waits for the write lock and for readers to move on (it
# holds the write lock meanwhile, so this bounds how long it can delay commits).
RESTART_WAIT = 0.02


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
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=RESTART_WAIT
        )
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                # Busy (another process checkpointing, a reader that stays) or failing: the
                # next nudge tries again.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                    self.done += 1
        finally:
            conn.close()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=10)


class Ledger:
    """The usage ledger on one SQLite connection, shared by threads under a lock.

    ``append`` commits before it returns (autocommit), so a row is durable as described in the
    module docstring by the time the request is acknowledged. ``append_many`` (group commit's,
    on the event loop) never waits for a file another process holds locked: it raises
    `LedgerBusy`; ``append`` (callers off the loop) waits up to ``timeout``.
    """

    # Commits take microseconds and never wait for a lock: group commit runs them on the loop.
    inline_commits = True

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
        # timeout: how long opening (creating or migrating the schema) and `append` wait for
        # another process's lock; `append_many` never waits (see the module docstring).
        self.path = path
        self.timeout = timeout
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=timeout
        )
        self._lock = threading.Lock()
        try:
            self._setup(synchronous)
        except BaseException:
            self._conn.close()
            raise
        self._cursor = self._conn.cursor()  # one for every commit: no cursor built per batch

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
        conn.execute("PRAGMA busy_timeout = 0")  # from now on a locked file raises at once
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
        """Record one request; committed when this returns. For callers off the event loop:
        a file another process holds locked is waited for (sleeping, up to `timeout`)."""
        deadline, delay = time.monotonic() + self.timeout, 0.0005
        while True:
            try:
                return self.append_many([row])
            except LedgerBusy:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def append_many(self, rows: list[LedgerRow]) -> None:
        """Record several requests in one transaction: all committed when this returns, or none
        (`LedgerBusy`: another process holds the file locked; the same rows may be retried)."""
        if not rows:
            return
        values: list[Any] = []
        for row in rows:
            values.extend(_to_db(row))
        with self._lock:
            try:
                if len(rows) <= INSERT_ROWS:  # one statement: its own transaction
                    self._cursor.execute(_INSERTS[len(rows)], values)
                else:
                    self._insert_chunks(values)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                    raise LedgerBusy(str(exc)) from exc
                raise
            self._committed()

    def _insert_chunks(self, values: list[Any]) -> None:
        """INSERT_ROWS rows per statement, all inside one transaction (under the lock)."""
        width, cursor = len(COLUMNS), self._cursor
        step = width * INSERT_ROWS
        cursor.execute("BEGIN")
        try:
            for start in range(0, len(values), step):
                chunk = values[start : start + step]
                cursor.execute(_INSERTS[len(chunk) // width], chunk)
            cursor.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                cursor.execute("ROLLBACK")
            raise

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
