"""Per-key limits on a local SQLite file: one set of counters for every worker process of a
machine (`serve --workers N`).

Every change is made inside a `BEGIN IMMEDIATE` transaction: SQLite's write lock makes the
read-check-write atomic across processes, so N workers enforce one rpm, one tpm and one budget.
The rules themselves are `limits.decide`, shared with the memory and Redis backends.

What a request costs is independent of the traffic in the window:
- `totals` keeps, per key, running counts (requests and tokens in the window, money held and
  holds in flight) and the spend of the current day and month, one row read and written per
  transaction. Rows entering or leaving the window adjust it; expiry deletes only the rows that
  fell out (a range of the `(key_id, at)` primary key), never counts the window, and looks for
  lapsed holds only once the oldest hold (`held_since`, a lower bound) can have lapsed.
- `win` (the rpm/tpm window) and `holds` (unsettled worst cases, lapsing after `ttl`) are keyed
  by (key_id, at, id), so settle finds a reservation's rows without a secondary index.
- Calls are queued and run together: the operations that arrive during one turn of the event
  loop share one transaction (one lock, one commit), each still decided on its own, in order.
- The connection never waits inside SQLite for the write lock (its busy handler sleeps whole
  milliseconds on the event loop): a busy file is retried on later loop turns, so the worker
  keeps serving meanwhile and more calls join the batch; after `patience` seconds the waiting
  calls fail with `StoreDown` and the guard applies the key's policy.
Money is TEXT (Decimal round-trips exactly) and summed in Python.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from triage.state.limits import (
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
    period_end,
    period_start,
)
from triage.state.redis_conn import StoreDown

_SCHEMA = """
CREATE TABLE IF NOT EXISTS win (
  key_id TEXT NOT NULL, at REAL NOT NULL, rid TEXT NOT NULL, n INTEGER NOT NULL,
  settled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key_id, at, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
  key_id TEXT NOT NULL, at REAL NOT NULL, rid TEXT NOT NULL, cost TEXT NOT NULL,
  PRIMARY KEY (key_id, at, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
  key_id TEXT PRIMARY KEY, requests INTEGER NOT NULL, tokens INTEGER NOT NULL,
  held TEXT NOT NULL, holds INTEGER NOT NULL, held_since REAL, day REAL NOT NULL,
  day_spent TEXT NOT NULL,
  month REAL NOT NULL, month_spent TEXT NOT NULL) WITHOUT ROWID;
DROP TABLE IF EXISTS requests;
DROP TABLE IF EXISTS tokens;
DROP TABLE IF EXISTS held;
DROP TABLE IF EXISTS spend
"""
# The last four are the windows of the first layout, which counted them on every call; its
# `spend` goes too: spend is seeded from the ledger when a key is first seen.

_LOAD = "SELECT * FROM totals WHERE key_id = ?"
_STORE = "INSERT OR REPLACE INTO totals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_LEAVE = "DELETE FROM win WHERE key_id = ? AND at <= ? RETURNING n"
_LAPSE = "DELETE FROM holds WHERE key_id = ? AND at <= ? RETURNING cost"
_OLDEST_HOLD = "SELECT MIN(at) FROM holds WHERE key_id = ?"
_PATIENCE = 10.0  # seconds a call may wait for the write lock, as busy_timeout did before


@dataclass(slots=True)
class _Totals:
    """One key's row of `totals`, as this transaction sees it."""

    requests: int
    tokens: int
    held: Decimal
    holds: int
    held_since: float | None  # no later than the oldest hold (None: no holds)
    day: float
    day_spent: Decimal
    month: float
    month_spent: Decimal
    swept: float = float("-inf")  # the window is already expired up to here in this batch

    def row(self, key_id: str) -> tuple[object, ...]:
        held, day, month = str(self.held), str(self.day_spent), str(self.month_spent)
        return (
            key_id,
            self.requests,
            self.tokens,
            held,
            self.holds,
            self.held_since,
            self.day,
            day,
            self.month,
            month,
        )


@dataclass(slots=True)
class _Call:
    run: Callable[[], Any]
    future: asyncio.Future[Any]
    since: float
    droppable: bool  # a reserve nobody waits for any more need not run


class SqliteLimits:
    """The limit store shared through a file, used from one event loop at a time."""

    def __init__(
        self,
        path: str | Path,
        spend_since: SpendSince | None = None,
        *,
        ttl: float = 900.0,
        patience: float = _PATIENCE,
    ) -> None:
        self.path = str(path)
        self.spend_since = spend_since
        self.ttl = ttl
        self.patience = patience
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=patience
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA}; COMMIT")
        self._db.execute("PRAGMA busy_timeout = 0")
        self._queue: list[_Call] = []
        self._pending: asyncio.Handle | None = None
        self._batch: dict[str, _Totals] = {}
        self._periods = (0.0, 0.0, 0.0, 0.0)  # day start, day end, month start, month end

    async def reserve(self, ask: Ask, now: float) -> Reservation | Refusal:
        future = self._submit(partial(self._reserve, ask, now), droppable=True)
        try:
            result: Reservation | Refusal = await future
        except asyncio.CancelledError:  # cancelled after it ran: give the hold back
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(future.result(), now)
            raise
        return result

    async def settle(
        self, reservation: Reservation, tokens: int, cost: Decimal, now: float
    ) -> None:
        # Runs even if the caller is cancelled meanwhile: a hold must not outlive its request.
        await self._submit(partial(self._settle, reservation, tokens, cost, now))

    async def snapshot(self, key_id: str, now: float) -> Snapshot:
        result: Snapshot = await self._submit(partial(self._snapshot, key_id, now))
        return result

    async def flush(self) -> None:
        return None  # every call's transaction is awaited by its caller

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the queue: many calls, one transaction ---------------------------------------------

    def _submit(self, run: Callable[[], Any], *, droppable: bool = False) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append(_Call(run, future, time.monotonic(), droppable))
        if self._pending is None:
            self._pending = loop.call_soon(self._flush, loop, 0)
        return future

    def _release(self, result: Reservation | Refusal, now: float) -> None:
        if isinstance(result, Reservation):
            future = self._submit(partial(self._settle, result, 0, ZERO, now))
            future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _flush(self, loop: asyncio.AbstractEventLoop, tries: int) -> None:
        self._pending = None
        calls = [c for c in self._queue if not (c.droppable and c.future.cancelled())]
        self._queue = []
        if not calls:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                return self._wait(loop, calls, tries) if busy else _fail(calls, exc)
            results = self._run(calls)
        if isinstance(results, list):
            for call, result in zip(calls, results, strict=True):
                if not call.future.done():
                    call.future.set_result(result)
            return
        culprit, error = results
        if culprit is None:  # the commit failed: nothing of the batch happened
            return _fail(calls, error)
        _fail([culprit], error)  # the others did nothing wrong: they go again
        self._queue[:0] = [c for c in calls if c is not culprit]
        if self._pending is None:
            self._pending = loop.call_soon(self._flush, loop, 0)

    def _run(self, calls: list[_Call]) -> list[Any] | tuple[_Call | None, Exception]:
        """Runs `calls` in the open transaction and commits: their results, or (the call that
        raised, or None if the commit did, and the error) after rolling all of them back."""
        results: list[Any] = []
        self._batch = {}
        try:
            for call in calls:
                results.append(call.run())
            for key_id, totals in self._batch.items():
                self._db.execute(_STORE, totals.row(key_id))
            self._db.execute("COMMIT")
        except Exception as exc:
            with suppress(sqlite3.Error):  # it may have rolled back already (disk full)
                self._db.execute("ROLLBACK")
            return (calls[len(results)] if len(results) < len(calls) else None), exc
        finally:
            self._batch = {}
        return results

    def _wait(self, loop: asyncio.AbstractEventLoop, calls: list[_Call], tries: int) -> None:
        """The file is busy with another worker's transaction: try again on a later turn of
        the loop (the first few at once, then backing off to a few milliseconds)."""
        if time.monotonic() - calls[0].since > self.patience:
            error = StoreDown(f"the state file stayed locked for {self.patience:g} s")
            return _fail(calls, error)
        self._queue[:0] = calls
        if tries < 3:
            self._pending = loop.call_soon(self._flush, loop, tries + 1)
        else:
            delay = min(0.0005 * 2 ** (tries - 3), 0.004)
            self._pending = loop.call_later(delay, self._flush, loop, tries + 1)

    # -- the operations, inside a transaction -----------------------------------------------

    def _reserve(self, ask: Ask, now: float) -> Reservation | Refusal:
        totals = self._totals(ask.key_id, now)
        counted = Counted(
            totals.requests,
            None,
            totals.tokens,
            None,
            {"day": totals.day_spent, "month": totals.month_spent},
            totals.held,
        )
        refusal = decide(ask, counted, now)
        if refusal is not None:
            if refusal.limit in ("rpm", "tpm"):  # its Retry-After comes from the oldest row
                oldest = self._db.execute(
                    "SELECT MIN(at) FROM win WHERE key_id = ?", (ask.key_id,)
                ).fetchone()[0]
                counted = replace(counted, oldest_request=oldest, oldest_tokens=oldest)
                refusal = decide(ask, counted, now) or refusal
            return refusal
        reservation = Reservation(new_id(), ask.key_id, ask.tokens, ask.cost, now)
        row = (ask.key_id, now, reservation.id)
        self._db.execute("INSERT INTO win VALUES (?, ?, ?, ?, 0)", (*row, ask.tokens))
        self._db.execute("INSERT INTO holds VALUES (?, ?, ?, ?)", (*row, str(ask.cost)))
        totals.requests += 1
        totals.tokens += ask.tokens
        totals.held += ask.cost
        totals.holds += 1
        if totals.held_since is None or now < totals.held_since:
            totals.held_since = now
        return reservation

    def _settle(self, reservation: Reservation, tokens: int, cost: Decimal, now: float) -> None:
        r = reservation
        # No sweep: `totals` always sums the rows present, so a row adjusted here and swept
        # later leaves it right; the next reserve or snapshot sweeps before it counts.
        totals = self._totals(r.key_id, now, sweep=False)
        row = (r.key_id, r.at, r.id)
        if self._db.execute(
            "UPDATE win SET n = ?, settled = 1 WHERE key_id = ? AND at = ? AND rid = ? "
            "AND settled = 0",
            (tokens, *row),
        ).rowcount:  # still in the window: the running total follows
            totals.tokens += tokens - r.tokens
        if self._db.execute(
            "DELETE FROM holds WHERE key_id = ? AND at = ? AND rid = ?", row
        ).rowcount:  # not lapsed, not settled before
            totals.held -= r.cost
            totals.holds -= 1
            if not totals.holds:
                totals.held_since = None
        totals.day_spent += cost
        totals.month_spent += cost

    def _snapshot(self, key_id: str, now: float) -> Snapshot:
        t = self._totals(key_id, now)
        return Snapshot(t.requests, t.tokens, t.day_spent, t.month_spent, t.held, t.holds)

    def _totals(self, key_id: str, now: float, *, sweep: bool = True) -> _Totals:
        """The key's totals at `now`: its periods current (seeded from the ledger when one
        begins) and (`sweep`) the rows that left the window or lapsed taken out."""
        totals = self._batch.get(key_id)
        if totals is None:
            totals = self._batch[key_id] = self._load(key_id, now)
        day, month = self._period_starts(now)
        if totals.day != day:
            totals.day, totals.day_spent = day, self._seed(key_id, day)
        if totals.month != month:
            totals.month, totals.month_spent = month, self._seed(key_id, month)
        if sweep and now > totals.swept:
            self._sweep(key_id, totals, now)
        return totals

    def _load(self, key_id: str, now: float) -> _Totals:
        row = self._db.execute(_LOAD, (key_id,)).fetchone()
        if row is None:
            return _Totals(0, 0, ZERO, 0, None, float("nan"), ZERO, float("nan"), ZERO)
        _, requests, tokens, held, holds, since, day, day_spent, month, month_spent = row
        return _Totals(
            requests,
            tokens,
            Decimal(held),
            holds,
            since,
            day,
            Decimal(day_spent),
            month,
            Decimal(month_spent),
        )

    def _sweep(self, key_id: str, totals: _Totals, now: float) -> None:
        left = self._db.execute(_LEAVE, (key_id, now - WINDOW)).fetchall()
        if left:
            totals.requests -= len(left)
            totals.tokens -= sum(n for (n,) in left)
        totals.swept = now
        if totals.held_since is None or totals.held_since > now - self.ttl:
            return  # no hold is old enough to lapse
        lapsed = self._db.execute(_LAPSE, (key_id, now - self.ttl)).fetchall()
        if lapsed:  # abandoned (a crashed worker): its spend hold lapses
            totals.held -= sum((Decimal(c) for (c,) in lapsed), ZERO)
            totals.holds -= len(lapsed)
        totals.held_since = self._db.execute(_OLDEST_HOLD, (key_id,)).fetchone()[0]

    def _seed(self, key_id: str, start: float) -> Decimal:
        return self.spend_since(key_id, start) if self.spend_since else ZERO

    def _period_starts(self, now: float) -> tuple[float, float]:
        day, day_end, month, month_end = self._periods
        if not (day <= now < day_end and month <= now < month_end):
            day, month = period_start(now, "day"), period_start(now, "month")
            self._periods = (day, period_end(now, "day"), month, period_end(now, "month"))
        return day, month


def _fail(calls: list[_Call], error: BaseException) -> None:
    """`error` to every caller still waiting; the file failing (I/O, disk full, locked) is the
    store being down, and the guard applies the key's policy."""
    if isinstance(error, sqlite3.OperationalError):
        error = StoreDown(f"the state file failed: {error}")
    for call in calls:
        if not call.future.done():
            call.future.set_exception(error)
