"""Per-key limits on a shared Redis/Valkey server: one rpm, one tpm and one budget for every
replica of a fleet (`state: {backend: redis, url: ...}`).

Each operation is one Lua script, so the read-check-write is atomic across replicas, and one
round trip (EVALSHA, on the lean pipelined client of `redis_wire`); a settle is written behind
(see `settle`). The rules are those of
`limits.decide`: the script checks the same numbers in the same order, and a refusal's message
and Retry-After are built by `decide` from the counts the script returns.

Per key (all keys share the `{key_id}` hash tag, so a cluster keeps them on one shard):
- `win`: sorted set of reservation ids by time (the rpm and tpm window), `tokn`: id -> tokens;
- `held`: id -> held cost, `heldat`: id by time; a hold older than `reservation_ttl` lapses,
  so a crashed replica's reservations stop holding spend;
- `sum`: running totals of `tokn` and `held` (no scan per request);
- `spend:day:<start>` / `spend:month:<start>`: settled spend of the period, seeded once from
  the ledger when the period's counter does not exist yet.

Money is integer nano-dollars (10^-9 USD) in the store, exact up to $9,007,199 per key and
period (Lua numbers are doubles). Holds and settled costs are rounded up to the next nano-dollar,
budget limits down: the store may count up to $0.000000001 a request more than the ledger,
never less.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from triage.state.limits import (
    PERIODS,
    WINDOW,
    Ask,
    Counted,
    Refusal,
    Reservation,
    Snapshot,
    SpendSince,
    decide,
    new_id,
    period_start,
)
from triage.state.redis_conn import PREFIX, StoreDown, call
from triage.state.redis_wire import Script, Wire, missing, pack_args

log = logging.getLogger("triage.state")
NANO = Decimal(10**9)
KEY_CACHE = 10_000  # keys whose store keys are kept encoded (cleared when full)
PERIOD_KEEP = 33 * 86400  # a month's counter outlives its month

_COMMON = """
local now = tonumber(ARGV[1])
local function drop(zkey, hkey, field, upto)
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', upto, 'LIMIT', 0, 1000)
  while #old > 0 do
    local values = redis.call('HMGET', hkey, unpack(old))
    local total = 0
    for _, v in ipairs(values) do total = total + (tonumber(v) or 0) end
    redis.call('HDEL', hkey, unpack(old))
    redis.call('ZREM', zkey, unpack(old))
    redis.call('HINCRBY', KEYS[5], field, -total)
    old = redis.call('ZRANGEBYSCORE', zkey, '-inf', upto, 'LIMIT', 0, 1000)
  end
end
local function seed_needed()
  local day = redis.call('EXISTS', KEYS[6])
  local month = redis.call('EXISTS', KEYS[7])
  if day == 0 or month == 0 then return {'seed', 1 - day, 1 - month} end
  return nil
end
local function counts()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local sums = redis.call('HMGET', KEYS[5], 'tok', 'held')
  return redis.call('ZCARD', KEYS[1]), first[2] or '', tonumber(sums[1]) or 0,
    tonumber(sums[2]) or 0, redis.call('GET', KEYS[6]), redis.call('GET', KEYS[7])
end
local function keep(seconds)
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], seconds) end
end
"""

# ARGV: now, window, ttl, rid, tokens, cost, rpm, tpm, daily, monthly, keep ('' = no limit)
_RESERVE = (
    _COMMON
    + """
drop(KEYS[1], KEYS[2], 'tok', now - tonumber(ARGV[2]))
drop(KEYS[4], KEYS[3], 'held', now - tonumber(ARGV[3]))
local seed = seed_needed()
if seed then return seed end
local requests, oldest, tokens, held, day, month = counts()
local ask, cost = tonumber(ARGV[5]), tonumber(ARGV[6])
local rpm, tpm = tonumber(ARGV[7]), tonumber(ARGV[8])
local daily, monthly = tonumber(ARGV[9]), tonumber(ARGV[10])
local limit = nil
if rpm and requests + 1 > rpm then limit = 'rpm'
elseif tpm and (ask > tpm or tokens + ask > tpm) then limit = 'tpm'
elseif daily and tonumber(day) + held + cost > daily then limit = 'daily'
elseif monthly and tonumber(month) + held + cost > monthly then limit = 'monthly'
end
if limit then
  return {'no', limit, requests, oldest, tokens, held, day, month}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('HSET', KEYS[2], ARGV[4], ask)
redis.call('HSET', KEYS[3], ARGV[4], cost)
redis.call('ZADD', KEYS[4], now, ARGV[4])
redis.call('HINCRBY', KEYS[5], 'tok', ask)
redis.call('HINCRBY', KEYS[5], 'held', cost)
keep(tonumber(ARGV[11]))
return {'ok'}
"""
)

# ARGV: now, rid, tokens, cost, keep
_SETTLE = (
    _COMMON
    + """
local seed = seed_needed()
if seed then return seed end
local rid = ARGV[2]
local old = redis.call('HGET', KEYS[2], rid)
if old then
  redis.call('HSET', KEYS[2], rid, ARGV[3])
  redis.call('HINCRBY', KEYS[5], 'tok', tonumber(ARGV[3]) - tonumber(old))
end
local held = redis.call('HGET', KEYS[3], rid)
if held then
  redis.call('HDEL', KEYS[3], rid)
  redis.call('ZREM', KEYS[4], rid)
  redis.call('HINCRBY', KEYS[5], 'held', -tonumber(held))
end
redis.call('INCRBY', KEYS[6], ARGV[4])
redis.call('INCRBY', KEYS[7], ARGV[4])
keep(tonumber(ARGV[5]))
return {'ok'}
"""
)

# ARGV: now, window, ttl
_SNAPSHOT = (
    _COMMON
    + """
drop(KEYS[1], KEYS[2], 'tok', now - tonumber(ARGV[2]))
drop(KEYS[4], KEYS[3], 'held', now - tonumber(ARGV[3]))
local seed = seed_needed()
if seed then return seed end
local requests, oldest, tokens, held, day, month = counts()
return {'ok', requests, oldest, tokens, held, day, month, redis.call('HLEN', KEYS[3])}
"""
)


def to_nano(amount: Decimal, *, up: bool = True) -> int:
    scaled = amount * NANO
    return int(math.ceil(scaled) if up else math.floor(scaled))


def from_nano(value: Any) -> Decimal:
    return Decimal(int(value)) / NANO


class RedisLimits:
    """The limit store shared by every replica that points at one Redis/Valkey server."""

    def __init__(
        self,
        client: Wire,
        spend_since: SpendSince | None = None,
        *,
        ttl: float = 900.0,
        prefix: str = PREFIX,
        on_failure: Callable[[str], None] = lambda operation: None,
    ) -> None:
        self.client = client
        self.on_failure = on_failure
        self._behind: set[asyncio.Future[Any]] = set()  # settles written behind
        self.spend_since = spend_since
        self.ttl = ttl
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._keep = int(max(WINDOW, ttl)) + 60
        self._key_cache: dict[str, _Keys] = {}

    def _keys(self, key_id: str, now: float) -> _Keys:
        """The key's store keys (and their RESP form), the same for a whole UTC day."""
        cached = self._key_cache.get(key_id)
        if cached is not None and cached.since <= now < cached.until:
            return cached
        base = f"{self.prefix}lim:{{{key_id}}}:"
        keys = [base + name for name in ("win", "tokn", "held", "heldat", "sum")]
        keys += [f"{base}spend:{p}:{int(period_start(now, p))}" for p, _ in PERIODS]
        day = period_start(now, "day")
        if len(self._key_cache) >= KEY_CACHE:
            self._key_cache.clear()
        self._key_cache[key_id] = entry = _Keys(keys, pack_args(keys), day, day + 86400)
        return entry

    async def _run(self, script: Script, key_id: str, now: float, args: list[Any]) -> list[Any]:
        """Run `script`, seeding the period counters from the ledger when it asks (once)."""
        keys = self._keys(key_id, now)
        args = [repr(now), *args]
        for _ in range(3):
            result: list[Any] = await call(lambda: script.run(keys.packed, len(keys.names), args))
            if result[0] != "seed":
                return result
            await self._seed(key_id, now, keys.names[5:], [bool(int(m)) for m in result[1:]])
        raise RuntimeError("the store's spend counters vanished while being seeded")

    async def _seed(self, key_id: str, now: float, keys: list[str], missing: list[bool]) -> None:
        for (period, _), key, absent in zip(PERIODS, keys, missing, strict=True):
            if absent:
                start = period_start(now, period)
                spent = self.spend_since(key_id, start) if self.spend_since else Decimal(0)
                value = to_nano(spent)
                await call(partial(self.client.execute, "SET", key, value, "NX", "EX", PERIOD_KEEP))

    async def reserve(self, ask: Ask, now: float) -> Reservation | Refusal:
        rid = new_id()
        args = [WINDOW, self.ttl, rid, ask.tokens, to_nano(ask.cost), *_limits(ask), self._keep]
        result = await self._run(self._reserve, ask.key_id, now, args)
        if result[0] == "ok":
            return Reservation(rid, ask.key_id, ask.tokens, ask.cost, now)
        _, limit, requests, oldest, tokens, held, day, month = result
        counted = Counted(
            requests=int(requests),
            oldest_request=float(oldest) if oldest else None,
            tokens=int(tokens),
            oldest_tokens=float(oldest) if oldest else None,
            spent={"day": from_nano(day), "month": from_nano(month)},
            held=from_nano(held),
        )
        refusal = decide(ask, counted, now)
        if refusal is None or refusal.limit != limit:  # rounding at the last nano-dollar
            return Refusal(limit, f"key `{ask.key_id}` is over its {limit} limit", None)
        return refusal

    async def settle(
        self, reservation: Reservation, tokens: int, cost: Decimal, now: float
    ) -> None:
        """Written behind: the script goes out with this connection's next write and the
        request does not wait for its answer. This replica's later reserve runs after it (one
        connection, commands in order); other replicas see it within a round trip, and until
        then see the hold, which is never less than the settled cost. A settle that fails is
        counted (`on_failure`) and logged here, as the guard does for the awaited calls; one
        the store cannot take at once (its period counters need seeding, or it lost the
        script in a restart) is retried in a task. `flush` waits for all of them."""
        keys = self._keys(reservation.key_id, now)
        args = [reservation.id, tokens, to_nano(cost), self._keep]
        command = self._settle.command(keys.packed, len(keys.names), [repr(now), *args])
        future = self.client.send_now(command, cork=True)
        if future is None:  # no connection yet: open one, and let the guard see a failure
            await self._run(self._settle, reservation.key_id, now, args)
            return
        self._behind.add(future)
        future.add_done_callback(partial(self._settled, reservation.key_id, now, args))

    def _settled(
        self, key_id: str, now: float, args: list[Any], future: asyncio.Future[Any]
    ) -> None:
        self._behind.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is None and future.result()[0] != "seed":
            return
        if error is None or missing(error):
            task = asyncio.get_running_loop().create_task(self._settle_again(key_id, now, args))
            self._behind.add(task)
            task.add_done_callback(self._behind.discard)
        else:
            self._failed(key_id, error)

    async def _settle_again(self, key_id: str, now: float, args: list[Any]) -> None:
        try:
            await self._run(self._settle, key_id, now, args)
        except (StoreDown, RuntimeError) as exc:
            self._failed(key_id, exc)

    def _failed(self, key_id: str, error: BaseException) -> None:
        self.on_failure("settle")
        reason = type(error).__name__ if isinstance(error, OSError) else str(error)
        log.warning(
            "state store unreachable (%s) on settle for key %s: served uncounted", reason, key_id
        )

    async def flush(self) -> None:
        """Wait for the settles written behind (at shutdown)."""
        for _ in range(10):  # a retry may start while the first answers are waited for
            if not self._behind:
                return
            await asyncio.gather(*list(self._behind), return_exceptions=True)

    async def snapshot(self, key_id: str, now: float) -> Snapshot:
        result = await self._run(self._snapshot, key_id, now, [WINDOW, self.ttl])
        _, requests, _oldest, tokens, held, day, month, in_flight = result
        return Snapshot(
            int(requests),
            int(tokens),
            from_nano(day),
            from_nano(month),
            from_nano(held),
            int(in_flight),
        )

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class _Keys:
    names: list[str]
    packed: bytes
    since: float  # the UTC day they are valid for
    until: float


def _limits(ask: Ask) -> list[Any]:
    def text(value: int | Decimal | None, money: bool = False) -> str:
        if value is None:
            return ""
        return str(to_nano(Decimal(value), up=False)) if money else str(value)

    return [
        text(ask.rpm),
        text(ask.tpm),
        text(ask.daily_usd, True),
        text(ask.monthly_usd, True),
    ]
