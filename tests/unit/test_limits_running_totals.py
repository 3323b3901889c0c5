"""MemoryLimits keeps running totals (the held spend, the day's and month's spend, the oldest
hold) instead of recomputing them per call. Attack them: a random stream of reservations,
settles (some twice, some never), abandoned holds lapsing, and clock jumps across midnights and
month ends, played against MemoryLimits and the SQLite store (which recomputes from its tables
under the same `decide` rules); every decision and every snapshot must agree, to the cent."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from triage.state.limits import Ask, MemoryLimits, Refusal, Reservation, Snapshot
from triage.state.sqlite import SqliteLimits

START = 1_801_439_000.0  # 2027-01-31 21:43 UTC: a midnight and a month end within reach
STEPS = 600


def _seeded(key: str, start: float) -> Decimal:
    # What the ledger says a key spent before the store first saw it: the same for both.
    return Decimal(int(start) % 7) / 100 + (Decimal("0.01") if key == "b" else 0)


def _ask(rng: random.Random, key: str) -> Ask:
    return Ask(
        key,
        rng.randint(0, 40),
        Decimal(rng.randint(0, 300)) / 1000,
        rpm=rng.choice([None, 50]),
        tpm=rng.choice([None, 2_000]),
        daily_usd=rng.choice([None, Decimal("3"), Decimal("5.5")]),
        monthly_usd=rng.choice([None, Decimal("9")]),
    )


def _step(rng: random.Random, now: float) -> float:
    # Mostly small steps; now and then past the ttl or far (over a midnight or a month end).
    return now + rng.choice([0.0, 0.5, 3.0, 3.0, 20.0, 61.0, 130.0, 3_000.0, 40_000.0])


@pytest.mark.parametrize("seed", range(4))
async def test_memory_totals_agree_with_sqlite_recomputing_them(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    memory = MemoryLimits(_seeded, ttl=120.0)
    sqlite = SqliteLimits(tmp_path / "state.db", _seeded, ttl=120.0)
    held: list[tuple[Reservation, Reservation]] = []
    now = START
    try:
        for _ in range(STEPS):
            now = _step(rng, now)
            key = rng.choice("ab")
            if held and rng.random() < 0.45:
                pair = held.pop(rng.randrange(len(held)))
                tokens, cost = rng.randint(0, 60), Decimal(rng.randint(0, 400)) / 1000
                await memory.settle(pair[0], tokens, cost, now)
                await sqlite.settle(pair[1], tokens, cost, now)
                if rng.random() < 0.1:  # a second settle of the same hold must change nothing
                    await memory.settle(pair[0], 0, Decimal(0), now)
                    await sqlite.settle(pair[1], 0, Decimal(0), now)
            else:
                ask = _ask(rng, key)
                mine, theirs = await memory.reserve(ask, now), await sqlite.reserve(ask, now)
                assert type(mine) is type(theirs)
                if isinstance(mine, Refusal):
                    assert mine == theirs
                elif rng.random() < 0.9:  # the rest are abandoned: their holds must lapse
                    assert isinstance(theirs, Reservation)
                    held.append((mine, theirs))
            for k in "ab":
                assert _view(await memory.snapshot(k, now)) == _view(await sqlite.snapshot(k, now))
    finally:
        memory.close()
        sqlite.close()


def _view(snap: Snapshot) -> tuple[object, ...]:
    # Money compared as numbers (the stores may keep different exponents: 0.10 == 0.1).
    return (
        snap.requests_last_minute,
        snap.tokens_last_minute,
        snap.spent_today.normalize(),
        snap.spent_this_month.normalize(),
        snap.reserved_usd.normalize(),
        snap.in_flight,
    )
