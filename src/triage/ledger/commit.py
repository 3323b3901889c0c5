"""Group commit: the rows of requests that finish together share one transaction.

Each request still waits for its own row to be committed before it is acknowledged, so an
acknowledged request is in the ledger; but requests that finish together pay for one commit
between them (a commit is most of an append's cost) instead of one each.

A local SQLite file commits in microseconds, so its batches (the rows submitted during one
event-loop turn) are written on the loop. A networked ledger (PostgreSQL) commits in a worker
thread instead, one batch at a time: rows that arrive while a batch is in flight form the next
batch, so the batch grows with the load instead of the loop waiting on the network.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from triage.ledger.rows import LedgerRow


class Appender(Protocol):
    inline_commits: bool

    def append(self, row: LedgerRow) -> None: ...

    def append_many(self, rows: list[LedgerRow]) -> None: ...


class GroupCommit:
    """Batches rows for `ledger`; `submit` returns a future that resolves once the row is
    committed (or fails with the commit's error: then no request of the batch is
    acknowledged)."""

    def __init__(self, ledger: Appender) -> None:
        self.ledger = ledger
        self._rows: list[LedgerRow] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None

    def submit(self, row: LedgerRow) -> asyncio.Future[None] | None:
        """Queue `row`; the future resolves once it is committed. Outside an event loop the row
        is committed before this returns (and None comes back)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.ledger.append(row)
            return None
        if not self._rows:
            if self.ledger.inline_commits:
                loop.call_soon(self.flush)
            elif self._writer is None or self._writer.done():
                self._writer = loop.create_task(self._write())
        waiter: asyncio.Future[None] = loop.create_future()
        self._rows.append(row)
        self._waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        """Commit what is queued now, on this thread."""
        rows, waiters = self._take()
        if rows:
            _settle(waiters, _commit(self.ledger, rows))

    async def _write(self) -> None:
        while self._rows:
            rows, waiters = self._take()
            failure = await asyncio.shield(asyncio.to_thread(_commit, self.ledger, rows))
            _settle(waiters, failure)

    async def drain(self) -> None:
        """Wait until every row submitted so far is committed (for a clean shutdown)."""
        if self.ledger.inline_commits:
            self.flush()
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
