"""The SQLite ledger checkpoints its WAL off the serving connection (whose commits run on the
event loop): a thread of its own does, while rows keep landing, and nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

from tests.unit.test_ledger import make_row
from triage.ledger import Ledger
from triage.ledger.rows import FIELDS, LedgerBusy, LedgerRow, values_of
from triage.ledger.sqlite import CHECKPOINT_EVERY, _to_db


def _wal_pages(path: Path) -> int:
    """Frames in the WAL not yet copied back, as a fresh connection sees them."""
    raw = sqlite3.connect(path)
    try:
        # wal_checkpoint(PASSIVE) from a reader reports (busy, frames in log, frames copied).
        busy, log, copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(log) - int(copied)
    finally:
        raw.close()


def _commit(ledger: Ledger, rows: list[LedgerRow]) -> None:
    """What group commit does with a batch: a file locked for a moment (the checkpointer's
    RESTART holds the write lock while it finishes) is tried again shortly after."""
    while True:
        try:
            return ledger.append_many(rows)
        except LedgerBusy:
            time.sleep(0.0005)


def test_the_serving_connection_never_checkpoints_but_the_ledger_does(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        auto = ledger._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert auto == 0  # SQLite's automatic checkpoint would run inside a commit
        for index in range(CHECKPOINT_EVERY * 3):
            _commit(ledger, [make_row(request_id=f"r{index}")])
        deadline = time.monotonic() + 20
        while ledger.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ledger.checkpoints >= 1
        assert len(ledger.rows()) == CHECKPOINT_EVERY * 3


def test_the_wal_starts_over_while_commits_keep_coming(tmp_path: Path) -> None:
    """Under steady load a commit always lands during a checkpoint; the WAL must still rewind
    (the passive checkpoint alone let it grow by every commit's pages, for good)."""
    path = tmp_path / "usage.db"
    wal = Path(f"{path}-wal")
    commits = CHECKPOINT_EVERY * 30
    with Ledger(path) as ledger:
        _commit(ledger, [make_row(request_id="first")])
        one_commit = wal.stat().st_size  # the WAL header and the first commit's pages
        largest = 0
        for index in range(commits):  # back to back: the checkpointer always races a commit
            _commit(ledger, [make_row(request_id=f"r{index}")])
            if index % 50 == 0:
                largest = max(largest, wal.stat().st_size)
        assert ledger.checkpoints >= 5
        assert len(ledger.rows()) == commits + 1
    # Growing for good, it would reach about `commits` commits' pages (30 checkpoint
    # intervals); rewinding, a few intervals' worth (more when a RESTART met a busy lock).
    assert largest < one_commit * CHECKPOINT_EVERY * 6, (largest, one_commit)


def test_rows_written_from_threads_during_checkpoints_all_land(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    before = set(threading.enumerate())
    with Ledger(path) as ledger:

        def worker(thread: int) -> None:
            for index in range(CHECKPOINT_EVERY):
                rows = [make_row(request_id=f"{thread}-{index}-{n}") for n in range(index % 3 + 1)]
                _commit(ledger, rows)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = 4 * sum(index % 3 + 1 for index in range(CHECKPOINT_EVERY))
        assert len(ledger.rows()) == expected
    # Closed cleanly: the checkpointer thread is gone and every row is in the file itself.
    # (Only this ledger's: apps of other tests that never ran their shutdown keep theirs.)
    mine = set(threading.enumerate()) - before
    assert not [t for t in mine if t.name == "ledger-checkpoint"]
    assert _wal_pages(path) == 0
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT count(*) FROM usage").fetchone()[0] == expected
    finally:
        raw.close()


def test_the_stored_values_follow_the_column_order() -> None:
    row = make_row(cost_usd=Decimal("1E-9"), counterfactual_usd=Decimal("2.50"), stream=False)
    expected = values_of(row)
    expected[FIELDS.index("cost_usd")] = "0.000000001"  # plain notation, never an exponent
    expected[FIELDS.index("counterfactual_usd")] = "2.50"
    expected[FIELDS.index("stream")] = 0
    assert _to_db(row) == tuple(expected)
    assert len(_to_db(row)) == len(FIELDS)
