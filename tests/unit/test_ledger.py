"""The usage ledger: WAL, exact round-trips, durability across kill -9, per-key spend."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from triage.ledger import GroupCommit, Ledger, LedgerRow


def make_row(**changes: Any) -> LedgerRow:
    row = LedgerRow(
        ts=1_700_000_000.25,
        request_id="req-1",
        key_id="key-a",
        task="code",
        tier="local",
        route="coder",
        deployment="ollama-qwen",
        status=200,
        prompt_tokens=1234,
        completion_tokens=567,
        usage_source="upstream",
        cost_usd=Decimal("0.000000123456789012345678901"),
        counterfactual_usd=Decimal("12345.678900"),
        latency_s=1.5,
        ttft_s=0.125,
        stream=True,
        attempts=2,
        fallbacks=1,
    )
    return dataclasses.replace(row, **changes)


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger(tmp_path / "usage.db") as opened:
        yield opened


def test_the_ledger_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        assert ledger.journal_mode == "wal"
    # WAL is a property of the file: any later connection sees it.
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_rows_round_trip_exactly(ledger: Ledger) -> None:
    row = make_row()
    other = make_row(request_id="req-2", key_id=None, route="", ttft_s=None, stream=False)
    ledger.append(row)
    ledger.append(other)
    back = ledger.rows()
    assert back == [row, other]
    # Every digit of the money survives, not just an equal-enough float.
    assert str(back[0].cost_usd) == str(row.cost_usd)
    assert str(back[0].counterfactual_usd) == "12345.678900"
    assert back[1].stream is False and back[1].ttft_s is None and back[1].key_id is None


def test_rows_since_filters_by_time(ledger: Ledger) -> None:
    for index, ts in enumerate((100.0, 200.0, 300.0)):
        ledger.append(make_row(ts=ts, request_id=f"r{index}"))
    assert [row.request_id for row in ledger.rows(since=200.0)] == ["r1", "r2"]
    assert len(ledger.rows()) == 3


def test_rows_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        ledger.append(make_row())
    with Ledger(path) as reopened:
        assert reopened.rows() == [make_row()]


def test_memory_ledger_works(tmp_path: Path) -> None:
    with Ledger(":memory:") as ledger:
        ledger.append(make_row())
        assert ledger.rows() == [make_row()]


def test_a_float_cost_is_refused() -> None:
    with pytest.raises(TypeError):
        make_row(cost_usd=0.1)
    with pytest.raises(TypeError):
        make_row(counterfactual_usd=Decimal("NaN"))


_CHILD = """
import sys, time
from decimal import Decimal
from triage.ledger import GroupCommit, Ledger, LedgerRow
ledger = Ledger(sys.argv[1])
ledger.append(LedgerRow(
    ts=42.0, request_id="acked", key_id="k", task="chat", tier="local", route="r",
    deployment="d", status=200, prompt_tokens=1, completion_tokens=2, usage_source="upstream",
    cost_usd=Decimal("0.00000042"), counterfactual_usd=Decimal("0.001"), latency_s=0.5,
    ttft_s=None, stream=False, attempts=1, fallbacks=0,
))
print("appended", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_an_acknowledged_row_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "appended"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    # No clean close ran, so the row is still only in the WAL: recovery must find it there.
    assert Path(f"{path}-wal").stat().st_size > 0
    with Ledger(path) as reopened:
        rows = reopened.rows()
    assert [(row.request_id, row.cost_usd) for row in rows] == [("acked", Decimal("0.00000042"))]


def test_spend_sums_one_key_within_the_window(ledger: Ledger) -> None:
    ledger.append(make_row(ts=100.0, key_id="a", cost_usd=Decimal("0.1")))
    ledger.append(make_row(ts=200.0, key_id="a", cost_usd=Decimal("0.2")))
    ledger.append(make_row(ts=300.0, key_id="a", cost_usd=Decimal("0.0000001")))
    ledger.append(make_row(ts=300.0, key_id="b", cost_usd=Decimal("5")))
    ledger.append(make_row(ts=300.0, key_id=None, cost_usd=Decimal("7")))
    # Exact: with floats 0.1 + 0.2 would not be 0.3.
    assert ledger.spend("a") == Decimal("0.3000001")
    assert ledger.spend("a", since=200.0) == Decimal("0.2000001")
    assert ledger.spend("b", since=301.0) == 0
    assert ledger.spend("nobody") == 0
    assert ledger.spend(None) == Decimal("7")


def test_concurrent_appends_from_threads_all_land(ledger: Ledger) -> None:
    def worker(thread: int) -> None:
        for index in range(25):
            ledger.append(make_row(request_id=f"{thread}-{index}", cost_usd=Decimal("0.01")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ledger.rows()) == 200
    assert ledger.spend("key-a") == Decimal("2.00")


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        Ledger(path)


async def test_group_commit_acknowledges_each_row_only_once_it_is_committed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        commits = GroupCommit(ledger)
        waiters = [commits.submit(make_row(request_id=f"r{i}")) for i in range(3)]
        assert all(w is not None and not w.done() for w in waiters)
        with Ledger(path) as other:
            assert other.rows() == []  # nothing is committed within the submitting turn
        await asyncio.gather(*[w for w in waiters if w is not None])
        with Ledger(path) as other:
            assert [row.request_id for row in other.rows()] == ["r0", "r1", "r2"]


async def test_group_commit_is_all_or_nothing_and_every_waiter_sees_the_failure(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        commits = GroupCommit(ledger)
        good = commits.submit(make_row(request_id="good"))
        bad = commits.submit(make_row(request_id="bad", task=None))  # type: ignore[arg-type]
        for waiter in (good, bad):
            assert waiter is not None
            with pytest.raises(sqlite3.IntegrityError):
                await waiter
        assert ledger.rows() == []
        # The ledger is usable afterwards: the failed batch was rolled back.
        again = commits.submit(make_row(request_id="later"))
        assert again is not None
        await again
        assert [row.request_id for row in ledger.rows()] == ["later"]


def test_group_commit_outside_an_event_loop_commits_at_once(tmp_path: Path) -> None:
    with Ledger(tmp_path / "usage.db") as ledger:
        assert GroupCommit(ledger).submit(make_row()) is None
        assert [row.request_id for row in ledger.rows()] == ["req-1"]
