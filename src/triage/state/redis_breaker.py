"""Circuit-breaker state and latency statistics shared by every replica through Redis/Valkey.

The `Store` protocol is synchronous and sits on the hot path (selection, the runner), so reads
never wait on the network: `RedisStore` is a `MemoryStore` whose entries are refreshed once per
request by `sync()` (one script for every deployment the plan may reach; `prefetch` sends it
ahead, read only, in the same write as the key's reservation, so it costs no wait of its own) and
whose failures and successes are written behind (a task per write; cooldown trips and probe
claims are atomic scripts). A request that saw a failure awaits its writes (`flush`) before it
answers, and `sync` awaits this replica's pending writes before reading, so what one replica
learns is seen by the others on their next request.

Shared, per deployment: the cooldown (a key that expires when the cooldown ends, so no clock is
compared across machines), the half-open mark and the probe claim (one replica probes: the
claim is taken atomically in `sync`, expires after `cooldown_time` if unused), the failure
window (scored by the store's clock), and the latency / time-to-first-token averages and sample
count. In-flight counts stay per replica. A store that cannot be reached leaves each replica on
its own state (counted in `triage_state_store_failures{operation="sync"|"write"}`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from triage.state.breaker import BreakerSettings, MemoryStore
from triage.state.limits import new_id
from triage.state.redis_conn import PREFIX, StoreDown, call
from triage.state.redis_wire import Wire, pack_args

MAX_PENDING = 1000  # writes in flight; past this they are dropped (and counted)
KEY_CACHE = 10_000  # deployments whose store keys are kept encoded (cleared when full)
UNCLAIMED = 3  # a read-only sync's probe column: half-open, nobody probing yet
_Sample = tuple[str, str, str]  # (deployment, latency, ttft) buffered for the next sync
FIELDS = ("cool", "half", "probe", "fails", "stats")

# Folds one latency/TTFT sample into a deployment's shared averages (stats key KEYS[k]).
_SAMPLE = """
local function sample(k, latency, ttft, alpha)
  local n = redis.call('HINCRBY', KEYS[k], 'n', 1)
  local weight = math.max(alpha, 1 / n)
  for i, field in ipairs({'lat', 'ttft'}) do
    local value = tonumber(({latency, ttft})[i])
    if value then
      local old = tonumber(redis.call('HGET', KEYS[k], field))
      redis.call('HSET', KEYS[k], field, old and (old + weight * (value - old)) or value)
    end
  end
  redis.call('EXPIRE', KEYS[k], 86400)
end
"""

# KEYS: 5 per deployment (FIELDS): the plan's first, then those with buffered samples.
# ARGV: owner, probe claim ms (0: read only, an unclaimed probe reads 3), alpha, how many to
# read, then (deployment index, latency, ttft) per buffered sample: this replica's successes
# since its last sync, applied first.
_SYNC = (
    _SAMPLE
    + """
for j = 5, #ARGV, 3 do
  sample(tonumber(ARGV[j]) * 5 + 5, ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[3]))
end
local out = {}
for i = 1, tonumber(ARGV[4]) * 5, 5 do
  local pttl = redis.call('PTTL', KEYS[i])
  local probe = 0
  if pttl <= 0 and redis.call('EXISTS', KEYS[i + 1]) == 1 then
    if ARGV[2] ~= '0' then redis.call('SET', KEYS[i + 2], ARGV[1], 'NX', 'PX', ARGV[2]) end
    local holder = redis.call('GET', KEYS[i + 2])
    probe = (holder == ARGV[1]) and 1 or (holder and 2 or 3)
  end
  local stats = redis.call('HMGET', KEYS[i + 4], 'lat', 'ttft', 'n')
  out[#out + 1] = {math.max(pttl, 0), probe, stats[1] or '', stats[2] or '', stats[3] or '0'}
end
return out
"""
)

# KEYS: one deployment's FIELDS; ARGV: owner, trips, allowed_fails, window ms, cooldown ms, id.
# The half-open mark outlives the cooldown by a day.
_FAIL = """
local mine = redis.call('GET', KEYS[3]) == ARGV[1]
if ARGV[2] == '0' then
  if mine then redis.call('DEL', KEYS[3]) end
  return 0
end
local function trip()
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[5])
  redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[5]) + 86400000)
  return 1
end
if mine then return trip() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[4], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[4], ARGV[4])
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[3]) then return trip() end
return 0
"""

# KEYS: one deployment's FIELDS; ARGV: latency ('' = none), ttft ('' = none), alpha.
# A success that closes the circuit everywhere (a probe, or after failures): written at once.
_OK = (
    _SAMPLE
    + """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
sample(5, ARGV[1], ARGV[2], tonumber(ARGV[3]))
return 1
"""
)


class RedisStore(MemoryStore):
    """The local breaker state, refreshed from and written behind to the shared store."""

    def __init__(
        self,
        client: Wire,
        breaker: BreakerSettings | None = None,
        *,
        prefix: str = PREFIX,
        on_failure: Callable[[str], None] = lambda operation: None,
    ) -> None:
        super().__init__(breaker)
        self.client = client
        self.prefix = prefix
        self.owner = new_id()
        self.on_failure = on_failure
        self._sync = client.register_script(_SYNC)
        self._fail = client.register_script(_FAIL)
        self._ok = client.register_script(_OK)
        self._pending: set[asyncio.Task[None]] = set()
        self._samples: list[_Sample] = []
        self._syncing: dict[tuple[str, ...], asyncio.Future[None]] = {}
        self._ids = itertools.count()
        self._written = 0  # writes sent so far: a prefetch older than one is not used
        self._ahead: ContextVar[_Ahead | None] = ContextVar("triage_sync_ahead", default=None)
        self._packed: dict[str, bytes] = {}
        self._alpha = repr(self.ALPHA)

    def _keys(self, deployment: str) -> list[str]:
        # One hash tag for every deployment key: a cluster keeps them on one shard, so a
        # plan's deployments are read by one script.
        return [f"{self.prefix}{{dep}}:{deployment}:{field}" for field in FIELDS]

    def prefetch(self, deployments: Sequence[str]) -> None:
        """Send the refresh of a request's deployments with the next command (the key's
        reservation, on the same connection), so that its round trip is not one of its own. The
        same request's `sync` takes the answer unless this replica wrote anything since (then
        it refreshes as before). Read only: a request refused after its prefetch holds no
        probe claim, and a probe to claim sends `sync` the ordinary way."""
        self._ahead.set(None)  # whatever an earlier request in this context left
        ids = tuple(dict.fromkeys(deployments))
        if self._pending or not ids:  # this replica's writes land before it reads
            return
        samples = self._samples
        self._samples = []
        future = self.client.send_now(self._command(list(ids), samples, claim=False), cork=True)
        if future is None:  # no connection yet: `sync` opens one
            self._samples = samples + self._samples
            return
        future.add_done_callback(_retrieve)
        self._ahead.set(_Ahead(ids, self._written, future))

    async def sync(self, deployments: Sequence[str], now: float) -> None:
        """Refresh the plan's deployments from the shared store, handing it this replica's
        buffered latency samples on the way (one script, one round trip, or none of its own
        after a `prefetch`). Requests that arrive while a refresh of the same deployments is
        on its way wait for that one."""
        ahead = self._ahead.get()
        if ahead is not None:
            self._ahead.set(None)
            if await self._take(ahead, tuple(dict.fromkeys(deployments)), now):
                return
        await self.flush()
        ids = tuple(dict.fromkeys(deployments))
        running = self._syncing.get(ids)
        if running is not None:
            await asyncio.shield(running)
            return
        done = asyncio.get_running_loop().create_future()
        self._syncing[ids] = done
        try:
            await self._refresh(list(ids), now)
        finally:
            del self._syncing[ids]
            done.set_result(None)

    async def _take(self, ahead: _Ahead, ids: tuple[str, ...], now: float) -> bool:
        """Merge a prefetched refresh if it still stands for this request."""
        if ahead.ids != ids or ahead.written != self._written:
            return False
        try:
            rows: list[list[Any]] = await ahead.future
        except (OSError, RuntimeError):
            return False  # the ordinary refresh retries, and counts a failure
        if ahead.written != self._written or any(int(row[1]) == UNCLAIMED for row in rows):
            return False
        for deployment, row in zip(ids, rows, strict=True):
            self._merge(deployment, row, now)
        return True

    async def _refresh(self, ids: list[str], now: float) -> None:
        samples, self._samples = self._samples, []
        if not ids and not samples:
            return
        command = self._command(ids, samples, claim=True)
        try:
            rows = await call(lambda: self._sync.run_packed(command))
        except StoreDown:
            self.on_failure("sync")
            return
        for deployment, row in zip(ids, rows, strict=True):
            self._merge(deployment, row, now)

    def _command(self, ids: list[str], samples: list[_Sample], *, claim: bool) -> bytes:
        """The sync script for `ids` (read first) and the deployments of `samples`."""
        order = ids + [d for d in dict.fromkeys(s[0] for s in samples) if d not in ids]
        index = {d: i for i, d in enumerate(order)}
        keys = b"".join(self._packed_keys(d) for d in order)
        claim_ms = (int(self.breaker.cooldown_time * 1000) or 1) if claim else 0
        args: list[str | int] = [self.owner, claim_ms, self._alpha, len(ids)]
        for deployment, latency, ttft in samples:
            args += [index[deployment], latency, ttft]
        return self._sync.command(keys, len(FIELDS) * len(order), args)

    def _packed_keys(self, deployment: str) -> bytes:
        packed = self._packed.get(deployment)
        if packed is None:
            if len(self._packed) >= KEY_CACHE:
                self._packed.clear()
            packed = self._packed[deployment] = pack_args(self._keys(deployment))
        return packed

    def _merge(self, deployment: str, row: list[Any], now: float) -> None:
        pttl, probe, latency, ttft, samples = row
        entry = self._get(deployment)
        if int(pttl) > 0:
            entry.cooldown_until = now + int(pttl) / 1000
        elif int(probe) == 0:  # closed everywhere (a probe succeeded somewhere)
            entry.cooldown_until = 0.0
            entry.probing = False
        else:
            if not 0.0 < entry.cooldown_until <= now:
                entry.cooldown_until = now - 1e-6  # half-open
            if int(probe) == 2:
                entry.probing = True  # another replica holds the probe
        if int(samples) > 0:
            entry.samples = int(samples)
            entry.latency = float(latency) if latency else entry.latency
            entry.ttft = float(ttft) if ttft else entry.ttft

    async def flush(self) -> None:
        """Wait for this replica's writes in flight."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def record_success(
        self, deployment: str, now: float, *, latency: float | None, ttft: float | None
    ) -> None:
        """A success that closes a circuit (a probe, or after failures) is written at once;
        otherwise only its latency sample is kept for the next `sync` to carry."""
        entry = self._get(deployment)
        closes = entry.probing or entry.cooldown_until > 0.0 or bool(entry.failures)
        super().record_success(deployment, now, latency=latency, ttft=ttft)
        lat = "" if latency is None else repr(latency)
        first = "" if ttft is None else repr(ttft)
        args = [lat, first]
        if closes:
            keys = self._keys(deployment)
            self._spawn(lambda: self._ok(keys=keys, args=[*args, repr(self.ALPHA)]))
        elif len(self._samples) < MAX_PENDING:
            self._samples.append((deployment, lat, first))

    def record_failure(self, deployment: str, now: float, *, trips: bool = True) -> None:
        super().record_failure(deployment, now, trips=trips)
        b = self.breaker
        args: list[str | int] = [self.owner, int(trips), b.allowed_fails, int(b.window * 1000)]
        args += [int(b.cooldown_time * 1000) or 1, f"{self.owner}:{next(self._ids)}"]
        keys = self._keys(deployment)
        self._spawn(lambda: self._fail(keys=keys, args=args))

    def _spawn(self, write: Callable[[], Awaitable[Any]]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the local state is all there is
        if len(self._pending) >= MAX_PENDING:
            self.on_failure("write")
            return
        self._written += 1
        task = loop.create_task(self._write(write))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, write: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call(write)
        except StoreDown:
            self.on_failure("write")


@dataclass(frozen=True)
class _Ahead:
    """A refresh sent by `prefetch`, for the same request's `sync`."""

    ids: tuple[str, ...]
    written: int  # the replica's write count when it was sent
    future: asyncio.Future[Any]


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a prefetch's failure as seen: a request refused after it never asks."""
    if not future.cancelled():
        future.exception()
