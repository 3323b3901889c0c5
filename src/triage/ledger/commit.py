"""Group commit: the rows of requests that finish together share one transaction.

Each request still waits for its own row to be committed before it is acknowledged, so an
acknowledged request is in the ledger; but requests that finish together pay for one commit
between them (a commit is most of an append's cost) instead of one each.

A local SQLite file commits in microseconds, so its batches (the rows submitted during one
event-loop turn) are written on the loop. When another process holds the file locked (the
workers of `serve --workers N` share one file) the ledger says so at once (`LedgerBusy`,
nothing written) instead of sleeping in SQLite's busy handler: the rows stay queued and are
tried again on later loop turns (the first few at once, then backing off to a few
milliseconds), joined by the rows that finish meanwhile; after `patience` seconds of a locked
file their requests fail, none acknowledged. The worker keeps serving all the while, and no
thread hand-off is paid per batch.

A networked ledger (PostgreSQL) commits in a worker thread instead, one batch at a time: rows
that arrive while a batch is in flight form the next batch, so the batch grows with the load
instead of the loop waiting on the network.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from triage.ledger.rows import LedgerBusy, LedgerRow

PATIENCE = 5.0  # seconds rows may wait for a locked file (SQLite's busy timeout before)


class Appender(Protocol):
    inline_commits: bool

    def append(self, row: LedgerRow) -> None: ...

    def append_many(self, rows: list[LedgerRow]) -> None: ...


class GroupCommit:
    """Batches rows for `ledger`; `submit` returns a future that resolves once the row is
    committed (or fails with the commit's error: then no request of the batch is
    acknowledged)."""

    def __init__(self, ledger: Appender, *, patience: float = PATIENCE) -> None:
        self.ledger = ledger
        self.patience = patience
        self._rows: list[LedgerRow] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._pending: asyncio.Handle | None = None  # the inline commit to come
        self._busy_since: float | None = None  # when the queued rows first found the file locked

    def submit(self, row: LedgerRow) -> asyncio.Future[None] | None:
        """Queue `row`; the future resolves once it is committed. Outside an event loop the row
        is committed before this returns (and None comes back)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.ledger.append(row)
            return None
        if self.ledger.inline_commits:
            if self._pending is None:
                self._pending = loop.call_soon(self._flush, loop, 0)
        elif not self._rows and (self._writer is None or self._writer.done()):
            self._writer = loop.create_task(self._write())
        waiter: asyncio.Future[None] = loop.create_future()
        self._rows.append(row)
        self._waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        """Commit what is queued now, on this thread (inside the event loop). If the file is
        locked, the rows stay queued and are tried again on later loop turns."""
        if self._pending is not None:
            self._pending.cancel()
        self._flush(asyncio.get_running_loop(), 0)

    def _flush(self, loop: asyncio.AbstractEventLoop, tries: int) -> None:
        self._pending = None
        rows, waiters = self._take()
        if not rows:
            return
        try:
            self.ledger.append_many(rows)
        except LedgerBusy as exc:
            return self._retry(loop, rows, waiters, tries, exc)
        except Exception as exc:  # every waiting request fails with it, none is acknowledged
            self._busy_since = None
            return _settle(waiters, exc)
        self._busy_since = None
        _settle(waiters, None)

    def _retry(
        self,
        loop: asyncio.AbstractEventLoop,
        rows: list[LedgerRow],
        waiters: list[asyncio.Future[None]],
        tries: int,
        busy: LedgerBusy,
    ) -> None:
        """The file is locked by another process: queue the rows again (ahead of those that
        came meanwhile) for a later loop turn, or fail them once it stayed locked too long."""
        now = loop.time()
        if self._busy_since is None:
            self._busy_since = now
        elif now - self._busy_since >= self.patience:
            self._busy_since = None
            error = LedgerBusy(f"the ledger file stayed locked for {self.patience:g} s")
            error.__cause__ = busy
            return _settle(waiters, error)
        self._rows[:0], self._waiters[:0] = rows, waiters
        if tries < 3:
            self._pending = loop.call_soon(self._flush, loop, tries + 1)
        else:
            delay = min(0.0005 * 2 ** (tries - 3), 0.004)
            self._pending = loop.call_later(delay, self._flush, loop, tries + 1)

    async def _write(self) -> None:
        while self._rows:
            rows, waiters = self._take()
            failure = await asyncio.shield(asyncio.to_thread(_commit, self.ledger, rows))
            _settle(waiters, failure)

    async def drain(self) -> None:
        """Wait until every row submitted so far is committed, or has failed (for a clean
        shutdown)."""
        waiters = list(self._waiters)
        if self.ledger.inline_commits and self._rows:
            self.flush()
        if waiters:
            await asyncio.wait(waiters)
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    def _take(self) -> tuple[list[LedgerRow], list[asyncio.Future[None]]]:
        taken = self._rows, self._waiters
        self._rows, self._waiters = [], []
        return taken


def _commit(ledger: Appender, rows: list[LedgerRow]) -> Exception | None:
    try:
        ledger.append_many(rows)
    except Exception as exc:  # every waiting request fails with it, none is acknowledged
        return exc
    return None


def _settle(waiters: list[asyncio.Future[None]], failure: Exception | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if failure is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(failure)
