"""The SQLite ledger's batched writes keep the file format: a batch is one multi-row INSERT (or
several in one transaction past INSERT_ROWS), all committed or none; a missing ttft is NULL;
money is plain decimal notation exactly as before."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tests.unit.test_ledger import make_row
from triage.ledger import GroupCommit, Ledger
from triage.ledger.sqlite import INSERT_ROWS, _money


def _raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    raw = sqlite3.connect(path)
    try:
        return list(raw.execute(sql))
    finally:
        raw.close()


@pytest.mark.parametrize("size", [1, 2, INSERT_ROWS, INSERT_ROWS + 1, 3 * INSERT_ROWS + 5])
def test_a_batch_of_any_size_lands_whole_and_in_order(tmp_path: Path, size: int) -> None:
    path = tmp_path / "usage.db"
    rows = [
        make_row(request_id=f"r{i}", cost_usd=Decimal(i) / 7, ttft_s=None if i % 2 else 0.5)
        for i in range(size)
    ]
    with Ledger(path) as ledger:
        ledger.append_many(rows)
        assert ledger.rows() == rows  # every field round-trips, in order
        assert ledger.spend("key-a") == sum((row.cost_usd for row in rows), Decimal(0))


@pytest.mark.parametrize("bad", [0, INSERT_ROWS - 1, INSERT_ROWS, 2 * INSERT_ROWS + 3])
def test_one_bad_row_anywhere_keeps_the_whole_batch_out(tmp_path: Path, bad: int) -> None:
    path = tmp_path / "usage.db"
    rows = [make_row(request_id=f"r{i}") for i in range(2 * INSERT_ROWS + 4)]
    rows[bad] = make_row(request_id="bad", task=None)
    with Ledger(path) as ledger:
        with pytest.raises(sqlite3.IntegrityError):
            ledger.append_many(rows)
        assert ledger.rows() == []
        ledger.append_many([make_row(request_id="after")])  # no transaction was left open
        assert len(ledger.rows()) == 1


def test_a_missing_ttft_is_stored_as_null(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        ledger.append_many([make_row(request_id="a", ttft_s=None), make_row(request_id="b")])
        ledger.append(make_row(request_id="c", ttft_s=None))
    stored = _raw(path, "SELECT request_id, ttft_s, typeof(ttft_s) FROM usage ORDER BY id")
    assert stored == [("a", None, "null"), ("b", 0.125, "real"), ("c", None, "null")]


def test_money_is_written_in_plain_notation_exactly_as_format_f() -> None:
    rng = random.Random(16)
    amounts = [Decimal("0"), Decimal("-0"), Decimal("0E-12"), Decimal("1E+3"), Decimal("1E-9")]
    amounts += [Decimal("12345.678900"), Decimal("0.000000123456789012345678901")]
    amounts += [
        Decimal(rng.randrange(-(10**12), 10**12)).scaleb(rng.randrange(-30, 12))
        for _ in range(2000)
    ]
    for amount in amounts:
        assert _money(amount) == format(amount, "f"), amount
        assert "E" not in _money(amount) and "e" not in _money(amount)


def test_money_round_trips_through_the_file(tmp_path: Path) -> None:
    amounts = [Decimal("1E+3"), Decimal("1E-9"), Decimal("0.000000123456789012345678901")]
    with Ledger(tmp_path / "usage.db") as ledger:
        ledger.append_many([make_row(request_id=str(a), cost_usd=a) for a in amounts])
        assert [row.cost_usd for row in ledger.rows()] == amounts
    stored = _raw(tmp_path / "usage.db", "SELECT cost_usd FROM usage ORDER BY id")
    assert stored == [("1000",), ("0.000000001",), ("0.000000123456789012345678901",)]


async def _many_at_once(ledger: Ledger, count: int) -> list[str]:
    commits = GroupCommit(ledger)
    waiters = [commits.submit(make_row(request_id=f"r{i}")) for i in range(count)]
    await asyncio.gather(*[w for w in waiters if w is not None])
    return [row.request_id for row in ledger.rows()]


def test_a_large_group_commit_lands_exactly_once(tmp_path: Path) -> None:
    with Ledger(tmp_path / "usage.db") as ledger:
        ids = asyncio.run(_many_at_once(ledger, 5 * INSERT_ROWS + 3))
    assert ids == [f"r{i}" for i in range(5 * INSERT_ROWS + 3)]
