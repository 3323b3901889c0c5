"""The SQLite limit store under attack: it must decide exactly as the memory store does over long
random histories (its running totals never drift from the rows), enforce one set of limits for
real processes racing on one file, keep the event loop running while another process holds the
file, and never leave a hold behind a cancelled call."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from triage.state.limits import Ask, MemoryLimits, Refusal, Reservation
from triage.state.redis_conn import StoreDown
from triage.state.sqlite import SqliteLimits

NOW = 1_800_000_000.0  # mid-month
COSTS = [Decimal(c) for c in ("0.00", "0.25", "0.50", "1.00", "1.75")]  # one exponent: exact text


def _recount(path: Path) -> dict[str, tuple[Any, ...]]:
    """What the rows of the file say, per key, against what its `totals` row says."""
    db = sqlite3.connect(path)
    out = {}
    for key_id, requests, tokens, held, holds, *_ in db.execute("SELECT * FROM totals"):
        win = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM win WHERE key_id = ?", (key_id,)
        ).fetchone()
        costs = db.execute("SELECT cost FROM holds WHERE key_id = ?", (key_id,)).fetchall()
        counted = (*win, sum((Decimal(c) for (c,) in costs), Decimal(0)), len(costs))
        out[key_id] = ((requests, tokens, Decimal(held), holds), counted)
    db.close()
    return out


def _seeded(key_id: str, start: float) -> Decimal:
    return Decimal(int(start) % 7) / 4  # the ledger's word, different for every period


def _random_ask(rng: random.Random) -> Ask:
    return Ask(
        rng.choice(["a", "b"]),
        rng.randint(1, 60),
        rng.choice(COSTS),
        rpm=rng.choice([None, 4, 8]),
        tpm=rng.choice([None, 100, 250]),
        daily_usd=rng.choice([None, Decimal("3.00"), Decimal("6.00")]),
        monthly_usd=rng.choice([None, Decimal("9.00")]),
    )


def _same(memory: object, sqlite: object) -> bool:
    if isinstance(memory, Reservation) and isinstance(sqlite, Reservation):
        return (memory.key_id, memory.tokens, memory.cost, memory.at) == (
            sqlite.key_id,
            sqlite.tokens,
            sqlite.cost,
            sqlite.at,
        )
    return memory == sqlite


@pytest.mark.parametrize("seed", range(6))
async def test_decides_exactly_like_the_memory_store_over_a_random_history(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    memory = MemoryLimits(_seeded, ttl=120.0)
    sqlite = SqliteLimits(tmp_path / "state.db", _seeded, ttl=120.0)
    held: list[tuple[Reservation, Reservation]] = []
    now = NOW
    for step in range(400):
        now += rng.choice([0.0, 0.5, 3.0, 17.0, 61.0, 130.0] + [40_000.0] * (step % 97 == 0))
        roll = rng.random()
        if roll < 0.55:
            ask = _random_ask(rng)
            pair = await memory.reserve(ask, now), await sqlite.reserve(ask, now)
            assert _same(*pair), (step, pair)
            if isinstance(pair[0], Reservation) and isinstance(pair[1], Reservation):
                held.append((pair[0], pair[1]))
        elif roll < 0.85 and held:  # settle one, sometimes one already settled
            m, s = held.pop(rng.randrange(len(held))) if rng.random() < 0.8 else held[0]
            tokens, cost = rng.randint(0, 80), rng.choice(COSTS)
            await memory.settle(m, tokens, cost, now)
            await sqlite.settle(s, tokens, cost, now)
        else:
            for key in ("a", "b"):
                pair = await memory.snapshot(key, now), await sqlite.snapshot(key, now)
                assert pair[0] == pair[1], (step, pair)
    for stored, counted in _recount(tmp_path / "state.db").values():
        assert stored == counted
    sqlite.close()


def _racer(path: str, barrier: Any, results: Any) -> None:
    async def run() -> list[Reservation]:
        store = SqliteLimits(path)
        ask = Ask("k", 10, Decimal("0.25"), rpm=1000, daily_usd=Decimal("7.00"))
        got = await asyncio.gather(*(store.reserve(ask, NOW) for _ in range(30)))
        store.close()
        return [r for r in got if isinstance(r, Reservation)]

    barrier.wait()
    results.put(asyncio.run(run()))


def test_racing_processes_admit_exactly_one_budget(tmp_path: Path) -> None:
    """Four processes, thirty concurrent asks each, one daily budget of 28 holds; another
    process settles them."""
    path = tmp_path / "state.db"
    SqliteLimits(path).close()
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    racers = [spawn.Process(target=_racer, args=(str(path), barrier, results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    admitted = [r for _ in racers for r in results.get(timeout=60)]
    for racer in racers:
        racer.join(timeout=30)
    assert len(admitted) == 28 and len({r.id for r in admitted}) == 28
    store = SqliteLimits(path)
    snap = asyncio.run(store.snapshot("k", NOW))
    assert (snap.in_flight, snap.reserved_usd) == (28, Decimal("7.00"))

    async def settle_all() -> None:
        await asyncio.gather(*(store.settle(r, 3, Decimal("0.10"), NOW) for r in admitted))

    asyncio.run(settle_all())
    snap = asyncio.run(store.snapshot("k", NOW))
    assert (snap.requests_last_minute, snap.tokens_last_minute) == (28, 28 * 3)
    assert snap.spent_today == Decimal("2.80") and snap.in_flight == 0
    assert snap.reserved_usd == 0
    for stored, counted in _recount(path).values():
        assert stored == counted


def _locker(path: Path) -> sqlite3.Connection:
    """Another process's connection in the middle of a write transaction."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_busy_file_leaves_the_event_loop_running(tmp_path: Path) -> None:
    store = SqliteLimits(tmp_path / "state.db")
    other = _locker(tmp_path / "state.db")
    ticks = 0

    async def unlock_after_ticks() -> None:
        nonlocal ticks
        for ticks in range(1, 21):  # noqa: B007
            await asyncio.sleep(0.005)
        other.execute("COMMIT")  # possible only because the loop kept running

    ask = Ask("k", 10, Decimal("1"), rpm=5)
    result, _ = await asyncio.gather(store.reserve(ask, NOW), unlock_after_ticks())
    assert isinstance(result, Reservation) and ticks == 20
    assert (await store.snapshot("k", NOW)).requests_last_minute == 1


async def test_a_file_locked_past_patience_fails_as_a_store_down(tmp_path: Path) -> None:
    store = SqliteLimits(tmp_path / "state.db", patience=0.2)
    other = _locker(tmp_path / "state.db")
    ask = Ask("k", 10, Decimal("1"), rpm=5)
    results = await asyncio.gather(
        *(store.reserve(ask, NOW) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, StoreDown) for r in results), results
    assert "state.db" not in str(results[0])
    other.execute("ROLLBACK")
    assert isinstance(await store.reserve(ask, NOW), Reservation)  # and it recovers
    assert (await store.snapshot("k", NOW)).requests_last_minute == 1


async def test_a_reserve_cancelled_before_it_ran_counts_nothing(tmp_path: Path) -> None:
    store = SqliteLimits(tmp_path / "state.db")
    task = asyncio.create_task(store.reserve(Ask("k", 10, Decimal("1"), rpm=5), NOW))
    await asyncio.sleep(0)  # the task has queued its call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = await store.snapshot("k", NOW)
    assert (snap.requests_last_minute, snap.in_flight, snap.reserved_usd) == (0, 0, 0)


async def test_a_reserve_cancelled_after_it_ran_gives_its_hold_back(tmp_path: Path) -> None:
    store = SqliteLimits(tmp_path / "state.db")
    task = asyncio.create_task(store.reserve(Ask("k", 10, Decimal("1"), rpm=5), NOW))
    await asyncio.sleep(0)  # queued
    await asyncio.sleep(0)  # ran and committed; the task has not resumed yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = await store.snapshot("k", NOW)
    assert (snap.in_flight, snap.reserved_usd, snap.tokens_last_minute) == (0, 0, 0)


async def test_a_settle_whose_caller_is_cancelled_still_lands(tmp_path: Path) -> None:
    store = SqliteLimits(tmp_path / "state.db")
    held = await store.reserve(Ask("k", 10, Decimal("1"), daily_usd=Decimal("5")), NOW)
    assert isinstance(held, Reservation)
    task = asyncio.create_task(store.settle(held, 4, Decimal("0.5"), NOW))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = await store.snapshot("k", NOW)
    assert (snap.in_flight, snap.reserved_usd, snap.spent_today) == (0, 0, Decimal("0.5"))
    assert snap.tokens_last_minute == 4


async def test_a_refusal_says_when_the_oldest_request_leaves(tmp_path: Path) -> None:
    store = SqliteLimits(tmp_path / "state.db")
    ask = Ask("k", 10, Decimal("0"), rpm=2)
    for at in (NOW, NOW + 10):
        assert isinstance(await store.reserve(ask, at), Reservation)
    refused = await store.reserve(ask, NOW + 25)
    assert isinstance(refused, Refusal) and refused.retry_after == 35


async def test_a_file_of_the_first_layout_opens(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE requests (key_id TEXT NOT NULL, at REAL NOT NULL);"
        "CREATE TABLE held (rid TEXT PRIMARY KEY, key_id TEXT, at REAL, cost TEXT);"
        "INSERT INTO requests VALUES ('k', 1800000000.0);"
    )
    old.close()
    store = SqliteLimits(path)
    assert isinstance(await store.reserve(Ask("k", 10, Decimal("1"), rpm=1), NOW), Reservation)


async def test_a_broken_connection_fails_the_waiting_calls_instead_of_hanging(
    tmp_path: Path,
) -> None:
    store = SqliteLimits(tmp_path / "state.db")
    store.close()
    ask = Ask("k", 10, Decimal("1"), rpm=5)
    results = await asyncio.wait_for(
        asyncio.gather(store.reserve(ask, NOW), store.snapshot("k", NOW), return_exceptions=True),
        timeout=10,
    )
    assert all(isinstance(r, sqlite3.ProgrammingError) for r in results), results
