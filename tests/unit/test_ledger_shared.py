"""A ledger file that several worker processes write (`serve --workers N`): a commit that must
wait for another process's lock waits in a thread, so the event loop keeps serving; a file
only this process writes commits on the loop. The other process is a second connection
holding SQLite's write lock, as another worker mid-commit would."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.unit.test_ledger import make_row
from triage.ledger import Ledger
from triage.ledger.commit import GroupCommit


async def _ticks_while_locked(ledger: Ledger, path: Path) -> tuple[int, int]:
    """Loop turns that ran while another connection held the lock for 0.3 s, and the rows
    the file holds once it let go."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    commits = GroupCommit(ledger)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    running = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    waiter = commits.submit(make_row(request_id="r1"))
    assert waiter is not None
    await asyncio.sleep(0.3)
    seen = ticks
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(waiter, 10)
    running.cancel()
    return seen, len(ledger.rows())


def test_a_shared_ledger_waits_for_the_lock_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path, shared=True) as ledger:
        ticks, rows = asyncio.run(_ticks_while_locked(ledger, path))
    assert rows == 1  # committed once the lock was free
    assert ticks >= 15  # the loop kept turning (every 10 ms) while the commit waited


def test_a_ledger_of_its_own_commits_on_the_loop(tmp_path: Path) -> None:
    """Inline, the same wait would hold the loop in SQLite's busy handler: here the lock is
    never let go (the loop that would let it go is the one waiting), so the commit fails after
    the ledger's lock timeout — which is why a shared file commits off the loop."""
    path = tmp_path / "usage.db"
    with Ledger(path, timeout=0.2) as ledger:
        assert ledger.inline_commits
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            asyncio.run(_ticks_while_locked(ledger, path))
