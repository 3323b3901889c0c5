"""A ledger file that other processes write too (`serve --workers N`): commits run on the event
loop and never wait there; a file another process holds locked is retried on later loop turns,
riding out short locks and failing the waiting requests (none acknowledged, none written) once
it stayed locked past the group commit's patience. The other process is a second connection
holding SQLite's write lock, as another worker mid-commit would, or real processes writing the
same file at once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.test_ledger import make_row
from triage.ledger import GroupCommit, Ledger, LedgerBusy


def _lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    return other


def _request_ids(path: Path) -> list[str]:
    raw = sqlite3.connect(path)
    try:
        return [rid for (rid,) in raw.execute("SELECT request_id FROM usage ORDER BY id")]
    finally:
        raw.close()


async def _ticks_while_locked(ledger: Ledger, path: Path, hold: float) -> tuple[int, int]:
    """Loop turns that ran while another connection held the lock for `hold` seconds, and the
    rows the file holds once it let go and the row's request was acknowledged."""
    other = _lock(path)
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
    await asyncio.sleep(hold)
    seen = ticks
    assert not waiter.done()  # not acknowledged while its row could not be written
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(waiter, 10)
    running.cancel()
    return seen, len(ledger.rows())


def test_a_locked_file_is_retried_on_later_loop_turns(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        assert ledger.inline_commits
        ticks, rows = asyncio.run(_ticks_while_locked(ledger, path, 0.3))
    assert rows == 1  # committed once the lock was free, exactly once
    assert ticks >= 15  # the loop kept turning (every 10 ms) while the row waited


def test_the_ledger_itself_never_waits_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        other = _lock(path)
        try:
            for size in (1, 5, 70):  # one statement, and the chunked transaction
                rows = [make_row(request_id=f"r{i}") for i in range(size)]
                with pytest.raises(LedgerBusy):
                    ledger.append_many(rows)
        finally:
            other.execute("COMMIT")
            other.close()
        ledger.append_many([make_row(request_id="after")])
    assert _request_ids(path) == ["after"]  # nothing of the refused batches was written


async def _locked_too_long(ledger: Ledger, path: Path) -> None:
    commits = GroupCommit(ledger, patience=0.2)
    other = _lock(path)
    try:
        early = commits.submit(make_row(request_id="early"))
        await asyncio.sleep(0.1)
        late = commits.submit(make_row(request_id="late"))  # joins the batch being retried
        for waiter in (early, late):
            assert waiter is not None
            with pytest.raises(LedgerBusy, match="stayed locked"):
                await asyncio.wait_for(waiter, 10)
    finally:
        other.execute("COMMIT")
        other.close()
    again = commits.submit(make_row(request_id="again"))  # the ledger still works
    assert again is not None
    await asyncio.wait_for(again, 10)


def test_a_file_locked_past_the_patience_fails_the_waiters(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        asyncio.run(_locked_too_long(ledger, path))
    assert _request_ids(path) == ["again"]  # the failed requests left no row


async def _drain_while_locked(ledger: Ledger, path: Path) -> bool:
    commits = GroupCommit(ledger)
    other = _lock(path)
    waiter = commits.submit(make_row(request_id="last"))
    assert waiter is not None
    asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
    await asyncio.wait_for(commits.drain(), 10)
    other.close()
    return waiter.done() and waiter.exception() is None


def test_drain_waits_for_a_locked_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        assert asyncio.run(_drain_while_locked(ledger, path))
    assert _request_ids(path) == ["last"]


_WRITER = """
import asyncio, json, sys, time
from decimal import Decimal
from triage.ledger import GroupCommit, Ledger, LedgerRow

path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

def row(rid):
    return LedgerRow(
        ts=time.time(), request_id=rid, key_id="k", task="chat", tier="local", route="r",
        deployment="d", status=200, prompt_tokens=1, completion_tokens=2,
        usage_source="upstream", cost_usd=Decimal("0.00000042"),
        counterfactual_usd=Decimal("0.001"), latency_s=0.5, ttft_s=None, stream=False,
        attempts=1, fallbacks=0,
    )

async def main():
    commits = GroupCommit(ledger, patience=30)
    acked, failed = [], []

    async def one(rid):
        try:
            await commits.submit(row(rid))
        except Exception as exc:
            failed.append([rid, repr(exc)])
        else:
            acked.append(rid)

    for start in range(0, count, 8):
        await asyncio.gather(*(one(f"{name}-{i}") for i in range(start, min(count, start + 8))))
        await asyncio.sleep(0)
    print(json.dumps({"acked": acked, "failed": failed}), flush=True)

ledger = Ledger(path)
print("ready", flush=True)
sys.stdin.readline()
asyncio.run(main())
ledger.close()
"""


def test_four_processes_share_one_file_under_contention(tmp_path: Path) -> None:
    """Four writers at once, the file also held locked by a fifth connection now and then
    (first for 0.3 s, before any writer could commit): every acknowledged request's row is in
    the file exactly once, and with locks shorter than the patience every request is."""
    path, count = tmp_path / "usage.db", 400
    Ledger(path).close()  # the schema, so that the writers' opening does not race on it
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"w{n}", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        other = _lock(path)
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = _hold_now_and_then(other, writers)
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
            writer.wait()
    acked = [rid for result in results for rid in result["acked"]]
    assert [result["failed"] for result in results] == [[]] * 4
    assert len(acked) == 4 * count
    stored = _request_ids(path)
    assert len(stored) == len(set(stored)) == 4 * count  # exactly once each
    assert set(stored) == set(acked)


def _hold_now_and_then(
    other: sqlite3.Connection, writers: list[subprocess.Popen[str]]
) -> list[dict[str, list[str]]]:
    """Hold the lock for 0.3 s, then for 20 ms every 50 ms until the writers are done; their
    results."""
    time.sleep(0.3)
    other.execute("COMMIT")
    for _ in range(400):  # bounded: 400 * 50 ms
        if all(writer.poll() is not None for writer in writers):
            break
        time.sleep(0.03)
        other.execute("BEGIN EXCLUSIVE")
        time.sleep(0.02)
        other.execute("COMMIT")
    other.close()
    results = []
    for writer in writers:
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
