"""Fewer round trips to the shared store, same guarantees (real Valkey, two stores standing for
two replicas): a breaker refresh sent ahead with the reservation still sees what another
replica did, is dropped when this replica wrote since or when it belongs to another request,
and never claims a probe; a settle written behind is applied before this replica's next
reserve, is counted when it cannot land, and is retried when the store lost its scripts."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.redis_server import ValkeyServer
from triage.state.breaker import BreakerSettings, DeploymentState
from triage.state.limits import Ask, Reservation
from triage.state.redis_breaker import RedisStore
from triage.state.redis_limits import RedisLimits
from triage.state.redis_wire import Wire

NOW = 1_800_000_000.0
SETTINGS = BreakerSettings(allowed_fails=2, window=60, cooldown_time=60.0)


class Replica:
    """A breaker store and a limit store on one connection, as `runtime` builds them."""

    def __init__(self, url: str) -> None:
        self.failures: list[str] = []
        self.store = RedisStore(Wire(url, 5.0), SETTINGS)
        self.limits = RedisLimits(self.store.client, on_failure=self.failures.append)

    async def request(self, deployments: list[str], ask: Ask) -> Reservation:
        """What the service and the runner do: prefetch, reserve, sync."""
        self.store.prefetch(deployments)
        held = await self.limits.reserve(ask, NOW)
        assert isinstance(held, Reservation)
        await self.store.sync(deployments, 1.0)
        return held


async def _scripts_run(probe: Wire) -> int:
    stats = await probe.execute("INFO", "commandstats")
    line = next(x for x in stats.splitlines() if x.startswith("cmdstat_evalsha:"))
    return int(line.split("calls=")[1].split(",")[0])


async def _end_cooldown(probe: Wire, deployment: str) -> None:
    key = f"triage:{{dep}}:{deployment}:cool"
    assert await probe.execute("PEXPIRE", key, 1) == 1
    for _ in range(500):
        if not await probe.execute("EXISTS", key):
            return
        await asyncio.sleep(0.01)


ASK = Ask("k", 10, Decimal("0.001"), rpm=10**6, daily_usd=Decimal(1000))


async def test_a_refresh_sent_with_the_reservation_sees_another_replicas_cooldown(
    valkey: ValkeyServer,
) -> None:
    a, b = Replica(valkey.url), Replica(valkey.url)
    probe = Wire(valkey.url, 5.0)
    await b.request(["d"], ASK)  # connection open, scripts loaded
    a.store.record_failure("d", 0.0)
    a.store.record_failure("d", 0.0)
    await a.store.flush()
    before = await _scripts_run(probe)
    await b.request(["d"], ASK)
    assert b.store.state("d", 0.0) == DeploymentState.COOLING_DOWN
    assert await _scripts_run(probe) - before == 2  # reserve and refresh; no third script


async def test_a_refresh_sent_ahead_is_not_used_once_this_replica_wrote(
    valkey: ValkeyServer,
) -> None:
    a, b = Replica(valkey.url), Replica(valkey.url)
    await b.request(["d"], ASK)
    b.store.prefetch(["d"])  # reads "healthy"
    assert isinstance(await b.limits.reserve(ASK, NOW), Reservation)
    # A concurrent request of this replica trips the deployment before this one's sync.
    b.store.record_failure("d", 0.0)
    b.store.record_failure("d", 0.0)
    await b.store.sync(["d"], 0.0)
    assert b.store.state("d", 0.0) == DeploymentState.COOLING_DOWN  # not wiped by the old read
    await a.store.sync(["d"], 0.0)
    assert a.store.state("d", 0.0) == DeploymentState.COOLING_DOWN


async def test_a_refresh_sent_ahead_belongs_to_its_request(valkey: ValkeyServer) -> None:
    a, b = Replica(valkey.url), Replica(valkey.url)
    probe = Wire(valkey.url, 5.0)
    await b.request(["d"], ASK)

    async def refused_request() -> None:  # prefetches, then is refused: never syncs
        b.store.prefetch(["d"])
        assert isinstance(await b.limits.reserve(ASK, NOW), Reservation)

    await asyncio.create_task(refused_request())
    a.store.record_failure("d", 0.0)
    a.store.record_failure("d", 0.0)
    await a.store.flush()
    before = await _scripts_run(probe)
    await b.store.sync(["d"], 0.0)  # another request: refreshes on its own
    assert await _scripts_run(probe) - before == 1
    assert b.store.state("d", 0.0) == DeploymentState.COOLING_DOWN


async def test_a_refresh_left_by_a_refused_request_is_not_taken_by_the_next_one(
    valkey: ValkeyServer,
) -> None:
    """In-process ASGI runs sequential requests in one task (one context): the next request's
    prefetch replaces what the refused one left, even when it sends nothing itself."""
    a, b = Replica(valkey.url), Replica(valkey.url)
    await b.request(["d"], ASK)
    b.store.prefetch(["d"])  # reads "healthy"; the request is then refused
    assert isinstance(await b.limits.reserve(ASK, NOW), Reservation)
    a.store.record_failure("d", 0.0)
    a.store.record_failure("d", 0.0)
    await a.store.flush()
    b.store.prefetch([])  # the next request sends nothing ahead
    await b.store.sync(["d"], 1.0)
    assert b.store.state("d", 1.0) == DeploymentState.COOLING_DOWN


async def test_a_refresh_sent_ahead_claims_no_probe(valkey: ValkeyServer) -> None:
    a, b = Replica(valkey.url), Replica(valkey.url)
    probe = Wire(valkey.url, 5.0)
    a.store.record_failure("d", 0.0)
    a.store.record_failure("d", 0.0)
    await a.store.flush()
    await _end_cooldown(probe, "d")
    b.store.prefetch(["d"])  # b's request is then refused: it must not hold the probe
    assert isinstance(await b.limits.reserve(ASK, NOW), Reservation)
    await a.store.sync(["d"], 1.0)
    assert a.store.acquire("d", 1.0)  # a probes
    c = Replica(valkey.url)
    await c.request(["d"], ASK)  # half-open and claimed: the read-only refresh will do
    assert not c.store.acquire("d", 1.0)


async def test_the_replica_that_sends_ahead_still_claims_a_free_probe(
    valkey: ValkeyServer,
) -> None:
    a, b = Replica(valkey.url), Replica(valkey.url)
    probe = Wire(valkey.url, 5.0)
    a.store.record_failure("d", 0.0)
    a.store.record_failure("d", 0.0)
    await a.store.flush()
    await _end_cooldown(probe, "d")
    await b.request(["d"], ASK)  # the prefetch read "unclaimed": sync claims it
    assert b.store.acquire("d", 1.0)
    await a.store.sync(["d"], 1.0)
    assert not a.store.acquire("d", 1.0)  # exactly one replica probes


async def test_a_settle_written_behind_is_applied_before_the_next_reserve(
    valkey: ValkeyServer,
) -> None:
    """Each reserve holds the whole budget: were a settle not applied before the next
    reserve, the next reserve would be refused."""
    replica = Replica(valkey.url)
    ask = Ask("s", 10, Decimal("1"), daily_usd=Decimal("1.5"))
    for _ in range(50):
        held = await replica.limits.reserve(ask, NOW)
        assert isinstance(held, Reservation)
        await replica.limits.settle(held, 5, Decimal("0.01"), NOW)
    snap = await replica.limits.snapshot("s", NOW)
    assert snap.spent_today == Decimal("0.5") and snap.in_flight == 0
    assert snap.reserved_usd == 0 and replica.failures == []


async def test_concurrent_settles_written_behind_all_land(valkey: ValkeyServer) -> None:
    replica = Replica(valkey.url)
    ask = Ask("c", 10, Decimal("0.01"), daily_usd=Decimal(100))
    held = await asyncio.gather(*(replica.limits.reserve(ask, NOW) for _ in range(100)))
    await asyncio.gather(
        *(replica.limits.settle(h, 1, Decimal("0.001"), NOW) for h in held)  # type: ignore[arg-type]
    )
    await replica.limits.flush()
    snap = await replica.limits.snapshot("c", NOW)
    assert snap.spent_today == Decimal("0.1") and snap.in_flight == 0


async def test_a_settle_that_cannot_land_is_counted(valkey: ValkeyServer) -> None:
    replica = Replica(valkey.url)
    held = await replica.limits.reserve(ASK, NOW)
    assert isinstance(held, Reservation)
    valkey.stop()
    try:
        await replica.limits.settle(held, 5, Decimal("0.0005"), NOW)  # does not raise
        await asyncio.wait_for(replica.limits.flush(), timeout=20)
        assert replica.failures == ["settle"]
    finally:
        valkey.start()
    assert isinstance(await replica.limits.reserve(ASK, NOW), Reservation)  # recovered


async def test_a_settle_is_retried_when_the_store_lost_its_scripts(valkey: ValkeyServer) -> None:
    replica = Replica(valkey.url)
    ask = Ask("r", 10, Decimal("1"), daily_usd=Decimal(10))
    held = await replica.limits.reserve(ask, NOW)
    assert isinstance(held, Reservation)
    assert await Wire(valkey.url, 5.0).execute("SCRIPT", "FLUSH") == "OK"
    await replica.limits.settle(held, 5, Decimal("0.25"), NOW)
    await replica.limits.flush()
    snap = await replica.limits.snapshot("r", NOW)
    assert snap.spent_today == Decimal("0.25") and snap.reserved_usd == 0
    assert replica.failures == []
