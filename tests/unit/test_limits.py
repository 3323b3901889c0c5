"""The limit stores, memory, SQLite and Redis (a real Valkey server), against the same rules:
all-or-nothing reservations, in-flight work counted, settling to actual usage, abandoned holds
lapsing, and (SQLite) one set of counters for every process that opens the file."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from triage.state.limits import Ask, LimitStore, MemoryLimits, Refusal, Reservation
from triage.state.redis_limits import RedisLimits
from triage.state.redis_wire import Wire
from triage.state.sqlite import SqliteLimits

NOW = 1_800_000_000.0  # a fixed moment, mid-month
Factory = Callable[..., LimitStore]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "memory":
        return lambda **kw: MemoryLimits(**kw)
    if request.param == "redis":
        url = request.getfixturevalue("valkey").url
        return lambda **kw: RedisLimits(Wire(url, 5.0), **kw)
    return lambda **kw: SqliteLimits(tmp_path / "state.db", **kw)


def _ask(**kw: object) -> Ask:
    base: dict[str, object] = {"key_id": "k", "tokens": 10, "cost": Decimal("1")}
    return Ask(**{**base, **kw})  # type: ignore[arg-type]


async def test_holds_count_until_settled_and_release_the_rest(make: Factory) -> None:
    store = make()
    first = await store.reserve(_ask(daily_usd=Decimal("2.5")), NOW)
    second = await store.reserve(_ask(daily_usd=Decimal("2.5")), NOW)
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    third = await store.reserve(_ask(daily_usd=Decimal("2.5")), NOW)
    assert isinstance(third, Refusal) and third.limit == "daily"
    await store.settle(first, 3, Decimal("0.25"), NOW)  # it cost less than its worst case
    assert isinstance(await store.reserve(_ask(daily_usd=Decimal("2.5")), NOW), Reservation)
    snap = await store.snapshot("k", NOW)
    assert snap.spent_today == Decimal("0.25") and snap.reserved_usd == Decimal("2")
    assert snap.in_flight == 2


async def test_a_refusal_consumes_no_other_limit(make: Factory) -> None:
    store = make()
    for _ in range(3):
        refused = await store.reserve(_ask(rpm=2, tpm=100, monthly_usd=Decimal("0")), NOW)
        assert isinstance(refused, Refusal) and refused.limit == "monthly"
    snap = await store.snapshot("k", NOW)
    assert snap.requests_last_minute == 0 and snap.tokens_last_minute == 0


async def test_zero_budget_admits_only_free_requests(make: Factory) -> None:
    store = make()
    assert isinstance(await store.reserve(_ask(daily_usd=Decimal(0)), NOW), Refusal)
    assert isinstance(
        await store.reserve(_ask(cost=Decimal(0), daily_usd=Decimal(0)), NOW), Reservation
    )


async def test_tpm_refuses_a_single_request_over_the_limit_without_retry_after(
    make: Factory,
) -> None:
    refused = await make().reserve(_ask(tokens=20_000, tpm=100), NOW)
    assert isinstance(refused, Refusal) and refused.retry_after is None
    assert "more than key `k`'s limit of 100" in refused.message


async def test_windows_slide_and_abandoned_holds_lapse(make: Factory) -> None:
    store = make(ttl=120.0)
    ask = _ask(rpm=1, tpm=10, daily_usd=Decimal("1"))
    assert isinstance(await store.reserve(ask, NOW), Reservation)
    refused = await store.reserve(ask, NOW + 30)
    assert isinstance(refused, Refusal) and refused.limit == "rpm"
    assert refused.retry_after == 30
    # A minute later the rpm and tpm windows have moved on, but the unsettled hold still
    # holds the whole budget...
    refused = await store.reserve(ask, NOW + 61)
    assert isinstance(refused, Refusal) and refused.limit == "daily"
    # ...until it lapses.
    assert isinstance(await store.reserve(ask, NOW + 121), Reservation)


async def test_spend_is_seeded_from_the_ledger_once_per_period(make: Factory) -> None:
    calls: list[float] = []

    def spend_since(key: str, start: float) -> Decimal:
        calls.append(start)
        return Decimal("0.75")

    store = make(spend_since=spend_since)
    refused = await store.reserve(_ask(cost=Decimal("0.5"), daily_usd=Decimal("1")), NOW)
    assert isinstance(refused, Refusal)
    assert (await store.snapshot("k", NOW)).spent_today == Decimal("0.75")
    assert len(calls) == 2  # day and month, each once


def test_two_stores_on_one_file_share_one_set_of_counters(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    workers = [SqliteLimits(path) for _ in range(4)]
    results: list[Reservation | Refusal] = []
    lock = threading.Lock()

    def run(store: SqliteLimits) -> None:
        for _ in range(25):
            result = asyncio.run(store.reserve(_ask(rpm=10, daily_usd=Decimal("100")), NOW))
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, Reservation) for r in results) == 10
    snaps = [asyncio.run(w.snapshot("k", NOW)) for w in workers]
    assert {s.requests_last_minute for s in snaps} == {10}


def test_period_starts_match_the_calendar_at_every_boundary() -> None:
    """The day is arithmetic and the month memoised per day: both agree with the calendar on
    either side of each midnight and month change over four years (and a leap day)."""
    import calendar
    import time

    from triage.state.limits import period_start

    def by_calendar(now: float, period: str) -> float:
        t = time.gmtime(now)
        day = 1 if period == "month" else t.tm_mday
        return float(calendar.timegm((t.tm_year, t.tm_mon, day, 0, 0, 0)))

    first = calendar.timegm((2023, 1, 1, 0, 0, 0))
    for day in range(4 * 366):
        midnight = first + day * 86400
        for now in (
            midnight - 0.5,
            midnight - 1e-6,
            float(midnight),
            midnight + 1e-6,
            midnight + 43200.25,
        ):
            for period in ("day", "month"):
                assert period_start(now, period) == by_calendar(now, period), (now, period)
