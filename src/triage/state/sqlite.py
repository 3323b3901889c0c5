"""Per-key limits on a local SQLite file: one set of counters for every worker process of a
machine (`serve --workers N`).

Each `reserve` is one `BEGIN IMMEDIATE` transaction: SQLite's write lock makes the
read-check-write atomic across processes, so N workers enforce one rpm, one tpm and one budget.
The rules themselves are `limits.decide`, shared with the memory backend. Money is TEXT
(Decimal round-trips exactly); the sums are done in Python inside the transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from triage.state.limits import (
    PERIODS,
    WINDOW,
    ZERO,
    Ask,
    Counted,
    Refusal,
    Reservation,
    Snapshot,
    SpendSince,
    decide,
    new_id,
    period_start,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (key_id TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_key_at ON requests (key_id, at);
CREATE TABLE IF NOT EXISTS tokens (
  rid TEXT PRIMARY KEY, key_id TEXT NOT NULL, at REAL NOT NULL, n INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_key_at ON tokens (key_id, at);
CREATE TABLE IF NOT EXISTS held (
  rid TEXT PRIMARY KEY, key_id TEXT NOT NULL, at REAL NOT NULL, cost TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spend (
  key_id TEXT NOT NULL, period TEXT NOT NULL, start REAL NOT NULL, amount TEXT NOT NULL,
  PRIMARY KEY (key_id, period));
"""


class SqliteLimits:
    """The limit store shared through a file. Calls are short transactions on the caller's
    thread; `busy_timeout` makes a worker wait its turn for the write lock."""

    def __init__(
        self, path: str | Path, spend_since: SpendSince | None = None, *, ttl: float = 900.0
    ) -> None:
        self.path = str(path)
        self.spend_since = spend_since
        self.ttl = ttl
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: the lock orders this process's threads, SQLite's write lock
        orders the processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    async def reserve(self, ask: Ask, now: float) -> Reservation | Refusal:
        # Run on the event loop: a local transaction takes tens of microseconds, less than a
        # hop to a thread would.
        with self._transaction():
            return self._reserve(ask, now)

    def _reserve(self, ask: Ask, now: float) -> Reservation | Refusal:
        self._expire(ask.key_id, now)
        refusal = decide(ask, self._counted(ask.key_id, now), now)
        if refusal is not None:
            return refusal
        reservation = Reservation(new_id(), ask.key_id, ask.tokens, ask.cost, now)
        db = self._db
        db.execute("INSERT INTO requests VALUES (?, ?)", (ask.key_id, now))
        db.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?)",
            (reservation.id, ask.key_id, now, ask.tokens),
        )
        db.execute(
            "INSERT INTO held VALUES (?, ?, ?, ?)",
            (reservation.id, ask.key_id, now, str(ask.cost)),
        )
        return reservation

    async def settle(
        self, reservation: Reservation, tokens: int, cost: Decimal, now: float
    ) -> None:
        with self._transaction():
            db = self._db
            db.execute("UPDATE tokens SET n = ? WHERE rid = ?", (tokens, reservation.id))
            db.execute("DELETE FROM held WHERE rid = ?", (reservation.id,))
            for period, _ in PERIODS:
                start, spent = self._period(reservation.key_id, now, period)
                self._store_period(reservation.key_id, period, start, spent + cost)

    async def snapshot(self, key_id: str, now: float) -> Snapshot:
        with self._transaction():
            self._expire(key_id, now)
            counted = self._counted(key_id, now)
            in_flight = self._db.execute(
                "SELECT COUNT(*) FROM held WHERE key_id = ?", (key_id,)
            ).fetchone()[0]
        return Snapshot(
            counted.requests,
            counted.tokens,
            counted.spent["day"],
            counted.spent["month"],
            counted.held,
            int(in_flight),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _expire(self, key_id: str, now: float) -> None:
        db = self._db
        db.execute("DELETE FROM requests WHERE key_id = ? AND at <= ?", (key_id, now - WINDOW))
        db.execute("DELETE FROM tokens WHERE key_id = ? AND at <= ?", (key_id, now - WINDOW))
        db.execute("DELETE FROM held WHERE key_id = ? AND at <= ?", (key_id, now - self.ttl))

    def _counted(self, key_id: str, now: float) -> Counted:
        db = self._db
        requests, oldest_request = db.execute(
            "SELECT COUNT(*), MIN(at) FROM requests WHERE key_id = ?", (key_id,)
        ).fetchone()
        tokens, oldest_tokens = db.execute(
            "SELECT COALESCE(SUM(n), 0), MIN(at) FROM tokens WHERE key_id = ?", (key_id,)
        ).fetchone()
        held = db.execute("SELECT cost FROM held WHERE key_id = ?", (key_id,)).fetchall()
        return Counted(
            requests=int(requests),
            oldest_request=oldest_request,
            tokens=int(tokens),
            oldest_tokens=oldest_tokens,
            spent={p: self._period(key_id, now, p)[1] for p, _ in PERIODS},
            held=sum((Decimal(c) for (c,) in held), ZERO),
        )

    def _period(self, key_id: str, now: float, period: str) -> tuple[float, Decimal]:
        start = period_start(now, period)
        row = self._db.execute(
            "SELECT start, amount FROM spend WHERE key_id = ? AND period = ?", (key_id, period)
        ).fetchone()
        if row is not None and row[0] == start:
            return start, Decimal(row[1])
        seeded = self.spend_since(key_id, start) if self.spend_since else ZERO
        self._store_period(key_id, period, start, seeded)
        return start, seeded

    def _store_period(self, key_id: str, period: str, start: float, amount: Decimal) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO spend VALUES (?, ?, ?, ?)", (key_id, period, start, str(amount))
        )
