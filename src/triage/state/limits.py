"""Per-key limits as reservations: a request's worst case is held before the upstream call and
settled to what it actually used afterwards.

`reserve` checks every limit of the key (requests and tokens per minute, daily and monthly
spend) against what is already counted *plus what is in flight*, and either holds all of them
or none (a request refused for one limit consumes no other). `settle` replaces the held worst
case with the actual tokens and cost. A reservation that is never settled (a crashed worker, a
stream nobody read) stops holding spend after `ttl` seconds; its tokens leave the per-minute
window like any others.

`MemoryLimits` serves one process. `state/sqlite.py` implements the same operations on a file
shared by the worker processes of one machine; a Redis backend can do the same with scripts.
"""

from __future__ import annotations

import calendar
import functools
import itertools
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, NamedTuple, Protocol

WINDOW = 60.0
ZERO = Decimal(0)
SpendSince = Callable[[str, float], Decimal]
Limit = Literal["rpm", "tpm", "daily", "monthly"]
PERIODS = (("day", "daily"), ("month", "monthly"))


class Ask(NamedTuple):
    """What one request asks of its key: its worst case against each configured limit. A named
    tuple rather than a frozen dataclass: one is built per request, at a third of the cost."""

    key_id: str
    tokens: int
    cost: Decimal
    rpm: int | None = None
    tpm: int | None = None
    daily_usd: Decimal | None = None
    monthly_usd: Decimal | None = None

    def budget(self, label: str) -> Decimal | None:
        return self.daily_usd if label == "daily" else self.monthly_usd


class Reservation(NamedTuple):
    """A held worst case (a named tuple: one is built per request)."""

    id: str
    key_id: str
    tokens: int
    cost: Decimal
    at: float


@dataclass(frozen=True)
class Refusal:
    limit: Limit
    message: str
    retry_after: float | None


@dataclass(frozen=True)
class Snapshot:
    requests_last_minute: int = 0
    tokens_last_minute: int = 0
    spent_today: Decimal = ZERO
    spent_this_month: Decimal = ZERO
    reserved_usd: Decimal = ZERO
    in_flight: int = 0


class LimitStore(Protocol):
    """Async so that a networked backend (Redis) can await its round trip; each call is one
    atomic step of the backend."""

    async def reserve(self, ask: Ask, now: float) -> Reservation | Refusal: ...
    async def settle(
        self, reservation: Reservation, tokens: int, cost: Decimal, now: float
    ) -> None: ...
    async def snapshot(self, key_id: str, now: float) -> Snapshot: ...
    async def flush(self) -> None:
        """Wait for writes made behind the callers' backs (Redis: settles); a no-op elsewhere."""

    def close(self) -> None: ...


@dataclass
class Counted:
    """What is already counted for a key at a moment, whatever the backend."""

    requests: int
    oldest_request: float | None
    tokens: int
    oldest_tokens: float | None
    spent: dict[str, Decimal]
    held: Decimal


def decide(ask: Ask, counted: Counted, now: float) -> Refusal | None:
    """The first limit `ask` does not fit in, or None: the same rules for every backend."""
    spent = counted.spent
    broken = _broken(
        ask,
        counted.requests,
        counted.tokens,
        spent.get("day", ZERO),
        spent.get("month", ZERO),
        counted.held,
    )
    return None if broken is None else _refusal(broken, ask, counted, now)


def may_refuse(
    ask: Ask, requests: int, tokens: int, day: Decimal, month: Decimal, held: Decimal
) -> bool:
    """Whether `decide` refuses `ask` on these counts, without building a `Counted`."""
    return _broken(ask, requests, tokens, day, month, held) is not None


_Broken = Literal["rpm", "tpm-request", "tpm", "daily", "monthly"]


def _broken(
    ask: Ask, requests: int, tokens: int, day: Decimal, month: Decimal, held: Decimal
) -> _Broken | None:
    """The first limit `ask` breaks on these counts (the rules, stated once), or None."""
    if ask.rpm is not None and requests + 1 > ask.rpm:
        return "rpm"
    tpm = ask.tpm
    if tpm is not None:
        if ask.tokens > tpm:
            return "tpm-request"
        if tokens + ask.tokens > tpm:
            return "tpm"
    daily, monthly = ask.daily_usd, ask.monthly_usd
    if daily is not None and day + held + ask.cost > daily:
        return "daily"
    if monthly is not None and month + held + ask.cost > monthly:
        return "monthly"
    return None


def _refusal(broken: _Broken, ask: Ask, counted: Counted, now: float) -> Refusal:
    """What a refusal for the `broken` limit says, and when to retry."""
    key = ask.key_id
    if broken == "rpm":
        after = _until((counted.oldest_request or now) + WINDOW, now)
        return Refusal("rpm", f"key `{key}` is over its {ask.rpm} requests per minute", after)
    if broken == "tpm-request":
        return Refusal(
            "tpm",
            f"this request needs up to {ask.tokens} tokens (prompt estimate plus max_tokens "
            f"× n), more than key `{key}`'s limit of {ask.tpm} tokens per minute",
            None,
        )
    if broken == "tpm":
        after = _until((counted.oldest_tokens or now) + WINDOW, now)
        return Refusal("tpm", f"key `{key}` is over its {ask.tpm} tokens per minute", after)
    period = "day" if broken == "daily" else "month"
    in_flight = f" (${counted.held} held by requests in flight)" if counted.held else ""
    return Refusal(
        broken,
        f"key `{key}` would exceed its {broken} budget of ${ask.budget(broken)}{in_flight}: a "
        f"request holds its worst case (${ask.cost}: max_tokens × n, or "
        "auth.reserve_output_tokens when max_tokens is unset) until it ends",
        _until(period_end(now, period), now),
    )


@dataclass
class _Key:
    # The rpm/tpm window, one request a slot, oldest first: when it was reserved and its tokens
    # (the worst case, then what it used). Two flat deques of numbers, not an object a request:
    # a key holds 60 s of its requests (~70 bytes each, ~160 as [at, tokens, flag] lists).
    times: deque[float] = field(default_factory=deque)
    tokens: deque[int] = field(default_factory=deque)
    first: int = 0  # the sequence number of the window's oldest slot (one a request, in order)
    token_total: int = 0  # the sum over `tokens`, kept as they come, settle and leave (O(1))
    by_id: dict[str, int] = field(default_factory=dict)  # unsettled: id -> sequence number
    held: dict[str, Reservation] = field(default_factory=dict)
    held_total: Decimal = ZERO  # the sum of `held`'s costs, kept as they come and go (exact)
    held_since: float = math.inf  # no held reservation is older (a bound: the ttl scan skips)
    periods: dict[str, tuple[float, Decimal]] = field(default_factory=dict)
    # `periods` are both current for a moment in [period_start, period_until) (one UTC day)
    period_start: float = math.inf
    period_until: float = -math.inf


class MemoryLimits:
    """One process's counters, touched only from its event loop; no call awaits anything, so
    each is atomic."""

    def __init__(self, spend_since: SpendSince | None = None, *, ttl: float = 900.0) -> None:
        self.spend_since = spend_since
        self.ttl = ttl
        self._keys: dict[str, _Key] = {}
        self._ids = itertools.count()  # ids live only here: a counter, not os.urandom per call

    async def reserve(self, ask: Ask, now: float) -> Reservation | Refusal:
        return self.take(ask, now)

    def take(self, ask: Ask, now: float) -> Reservation | Refusal:
        """`reserve` without a coroutine (nothing here awaits): for a caller that knows it
        holds a `MemoryLimits`. `decide` rules whenever `may_refuse` says it might refuse."""
        entry = self._entry(ask.key_id, now)
        periods = entry.periods  # `_periods`' own check, without its call while the day lasts
        if not entry.period_start <= now < entry.period_until:
            periods = self._periods(ask.key_id, entry, now)
        day, month, held = periods["day"][1], periods["month"][1], entry.held_total
        if may_refuse(ask, len(entry.times), entry.token_total, day, month, held):
            refusal = decide(ask, self._counted(ask.key_id, entry, now), now)
            if refusal is not None:
                return refusal
        reservation = Reservation(str(next(self._ids)), ask.key_id, ask.tokens, ask.cost, now)
        entry.by_id[reservation.id] = entry.first + len(entry.times)
        entry.times.append(now)
        entry.tokens.append(ask.tokens)
        entry.token_total += ask.tokens
        entry.held[reservation.id] = reservation
        entry.held_total += ask.cost
        if now < entry.held_since:
            entry.held_since = now
        return reservation

    async def settle(
        self, reservation: Reservation, tokens: int, cost: Decimal, now: float
    ) -> None:
        self.release(reservation, tokens, cost, now)

    def release(self, reservation: Reservation, tokens: int, cost: Decimal, now: float) -> None:
        """`settle` without a coroutine, as `take` is `reserve`'s."""
        entry = self._entry(reservation.key_id, now)
        sequence = entry.by_id.pop(reservation.id, None)
        if sequence is not None and sequence >= entry.first:  # still in the window
            slot = sequence - entry.first  # near the newest end: deque indexing is quick there
            entry.token_total += tokens - entry.tokens[slot]
            entry.tokens[slot] = tokens
        held = entry.held.pop(reservation.id, None)
        if held is not None:
            entry.held_total -= held.cost
        periods = entry.periods
        if not entry.period_start <= now < entry.period_until:
            periods = self._periods(reservation.key_id, entry, now)
        day, month = periods["day"], periods["month"]
        periods["day"], periods["month"] = (day[0], day[1] + cost), (month[0], month[1] + cost)

    async def snapshot(self, key_id: str, now: float) -> Snapshot:
        entry = self._entry(key_id, now)
        counted = self._counted(key_id, entry, now)
        return Snapshot(
            counted.requests,
            counted.tokens,
            counted.spent["day"],
            counted.spent["month"],
            counted.held,
            len(entry.held),
        )

    async def flush(self) -> None:
        return None

    def close(self) -> None:
        self._keys.clear()

    def _entry(self, key_id: str, now: float) -> _Key:
        entry = self._keys.get(key_id)
        if entry is None:
            entry = self._keys[key_id] = _Key()
        times = entry.times
        while times and times[0] <= now - WINDOW:
            times.popleft()
            entry.token_total -= entry.tokens.popleft()
            entry.first += 1
        if entry.held_since <= now - self.ttl:
            self._lapse(entry, now)
        return entry

    def _lapse(self, entry: _Key, now: float) -> None:
        """Drop the reservations held longer than the ttl (abandoned: their holds lapse)."""
        for rid in [r.id for r in entry.held.values() if r.at <= now - self.ttl]:
            entry.held_total -= entry.held.pop(rid).cost
            entry.by_id.pop(rid, None)
        entry.held_since = min((r.at for r in entry.held.values()), default=math.inf)

    def _counted(self, key_id: str, entry: _Key, now: float) -> Counted:
        periods = self._periods(key_id, entry, now)
        return Counted(
            requests=len(entry.times),
            oldest_request=entry.times[0] if entry.times else None,
            tokens=entry.token_total,
            oldest_tokens=entry.times[0] if entry.times else None,
            spent={"day": periods["day"][1], "month": periods["month"][1]},
            held=entry.held_total,
        )

    def _periods(self, key_id: str, entry: _Key, now: float) -> dict[str, tuple[float, Decimal]]:
        """(start, spent) of the day and the month containing `now`, both in one pass: while
        `now` stays inside the current day (and so the month) nothing is recomputed."""
        if entry.period_start <= now < entry.period_until:
            return entry.periods
        for period, _ in PERIODS:
            start = period_start(now, period)
            current = entry.periods.get(period)
            if current is None or current[0] != start:
                seeded = self.spend_since(key_id, start) if self.spend_since else ZERO
                entry.periods[period] = (start, seeded)
        entry.period_start = period_start(now, "day")
        entry.period_until = entry.period_start + 86400
        return entry.periods


def new_id() -> str:
    return os.urandom(12).hex()


def _until(moment: float, now: float) -> float:
    return float(max(1, math.ceil(moment - now)))


def period_start(now: float, period: str) -> float:
    """The UTC day's or month's first second. POSIX days are 86,400 s (no leap seconds), so
    the day is arithmetic; the month is looked up once per day (on every request before)."""
    day = now // 86400 * 86400
    return _month_start(int(day)) if period == "month" else float(day)


@functools.lru_cache(maxsize=8)
def _month_start(day: int) -> float:
    t = time.gmtime(day)
    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


def period_end(now: float, period: str) -> float:
    if period == "day":
        return period_start(now, "day") + 86400
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))
