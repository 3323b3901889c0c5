"""The shared breaker state and limits on a real Valkey server, with two stores standing for two
replicas: a cooldown one trips is seen by the other after its next `sync`, exactly one replica
probes a half-open deployment, a success anywhere closes it everywhere, latency averages are
shared; many clients reserving at once get exactly the limit; an unreachable store raises
`StoreDown` fast and the same client works again once the store is back."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.redis_server import ValkeyServer
from triage.state.breaker import BreakerSettings, DeploymentState
from triage.state.limits import Ask, Reservation
from triage.state.redis_breaker import RedisStore
from triage.state.redis_conn import StoreDown, async_client
from triage.state.redis_limits import RedisLimits
from triage.state.redis_wire import Wire

NOW = 1_800_000_000.0


def _pair(url: str, cooldown: float = 60.0) -> tuple[RedisStore, RedisStore]:
    settings = BreakerSettings(allowed_fails=2, window=60, cooldown_time=cooldown)
    return (
        RedisStore(Wire(url, 5.0), settings),
        RedisStore(Wire(url, 5.0), settings),
    )


async def _end_cooldown(valkey: ValkeyServer, deployment: str) -> None:
    """What the store's clock does when the cooldown is over: its key expires."""
    client = async_client(valkey.url, 5.0)
    assert await client.pexpire(f"triage:{{dep}}:{deployment}:cool", 1)
    for _ in range(500):
        if not await client.exists(f"triage:{{dep}}:{deployment}:cool"):
            break
        await asyncio.sleep(0.01)
    await client.aclose()


async def test_a_cooldown_is_shared_and_one_replica_probes(valkey: ValkeyServer) -> None:
    a, b = _pair(valkey.url)
    await b.sync(["d"], 0.0)
    assert b.acquire("d", 0.0)
    b.release("d")
    # One failure on each replica: neither reached allowed_fails alone, together they do.
    a.record_failure("d", 0.0)
    b.record_failure("d", 0.0)
    await a.flush()
    await b.flush()
    await a.sync(["d"], 1.0)
    await b.sync(["d"], 1.0)
    assert a.state("d", 1.0) == b.state("d", 1.0) == DeploymentState.COOLING_DOWN
    assert not a.acquire("d", 1.0) and not b.acquire("d", 1.0)
    await _end_cooldown(valkey, "d")
    await a.sync(["d"], 2.0)
    await b.sync(["d"], 2.0)
    probes = [a.acquire("d", 2.0), b.acquire("d", 2.0)]
    assert sorted(probes) == [False, True]  # exactly one replica holds the probe
    prober, other = (a, b) if probes[0] else (b, a)
    prober.record_success("d", 2.0, latency=0.5, ttft=None)
    await prober.flush()
    await other.sync(["d"], 3.0)
    assert other.state("d", 3.0) == DeploymentState.HEALTHY and other.acquire("d", 3.0)
    assert other.latency("d", stream=False) == 0.5 and other.samples("d") == 1


async def test_a_failed_probe_cools_down_again_everywhere(valkey: ValkeyServer) -> None:
    a, b = _pair(valkey.url)
    a.record_failure("d", 0.0)
    a.record_failure("d", 0.0)
    await a.flush()
    await _end_cooldown(valkey, "d")
    await a.sync(["d"], 1.0)
    assert a.acquire("d", 1.0)  # a holds the probe
    a.record_failure("d", 1.0)
    await a.flush()
    await b.sync(["d"], 1.0)
    assert b.state("d", 1.0) == DeploymentState.COOLING_DOWN


async def test_many_clients_reserving_at_once_get_exactly_the_limit(
    valkey: ValkeyServer,
) -> None:
    stores = [RedisLimits(Wire(valkey.url, 5.0)) for _ in range(4)]
    ask = Ask("k", 10, Decimal("0.000000001"), rpm=1000, daily_usd=Decimal("0.000000013"))
    results = await asyncio.gather(*(s.reserve(ask, NOW) for s in stores for _ in range(25)))
    assert sum(isinstance(r, Reservation) for r in results) == 13  # to the nano-dollar
    snap = await stores[0].snapshot("k", NOW)
    assert snap.in_flight == 13 and snap.reserved_usd == Decimal("0.000000013")


async def test_an_unreachable_store_fails_fast_and_recovers(valkey: ValkeyServer) -> None:
    limits = RedisLimits(Wire(valkey.url, 0.5))
    ask = Ask("k", 10, Decimal("1"), daily_usd=Decimal("100"))
    assert isinstance(await limits.reserve(ask, NOW), Reservation)
    valkey.stop()
    try:
        for _ in range(3):
            try:
                await asyncio.wait_for(limits.reserve(ask, NOW), timeout=10)
            except StoreDown as exc:
                assert valkey.url not in str(exc)
            else:
                raise AssertionError("a reserve succeeded with the store down")
    finally:
        valkey.start()
    assert isinstance(await limits.reserve(ask, NOW), Reservation)  # same client, no restart


async def test_latency_samples_ride_on_the_next_sync(valkey: ValkeyServer) -> None:
    a, b = _pair(valkey.url)
    for seconds in (1.0, 2.0, 3.0):  # the first samples are a plain mean
        a.record_success("d", 0.0, latency=seconds, ttft=None)
    a.record_success("d", 0.0, latency=None, ttft=0.25)
    await b.sync(["d"], 0.0)
    assert b.samples("d") == 0  # still buffered on a: no round trip per success
    await a.sync(["e"], 0.0)  # a's next request, whatever its plan, carries them
    await b.sync(["d"], 0.0)
    assert b.samples("d") == 4
    assert b.latency("d", stream=False) == 2.0 and b.latency("d", stream=True) == 0.25


def test_the_client_works_on_uvloop(valkey: ValkeyServer) -> None:
    """`triage serve` runs on uvloop, whose transports are not asyncio's classes."""
    import uvloop

    async def run() -> list[object]:
        limits = RedisLimits(Wire(valkey.url, 5.0))
        ask = Ask("k", 10, Decimal("1"), rpm=2)
        return [await limits.reserve(ask, NOW) for _ in range(3)]

    results = uvloop.run(run())
    assert [type(r).__name__ for r in results] == ["Reservation", "Reservation", "Refusal"]


async def test_a_store_that_hangs_fails_the_call_and_is_used_again_after(
    valkey: ValkeyServer,
) -> None:
    """A frozen server (SIGSTOP: it accepts nothing and answers nothing) is a dead store to
    the caller within the client's timeout; once it thaws, the same client works again."""
    import os
    import signal

    assert valkey.process is not None
    limits = RedisLimits(Wire(valkey.url, 0.3))
    ask = Ask("k", 10, Decimal("1"), daily_usd=Decimal("100"))
    assert isinstance(await limits.reserve(ask, NOW), Reservation)
    os.kill(valkey.process.pid, signal.SIGSTOP)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(limits.reserve(ask, NOW) for _ in range(5)), return_exceptions=True),
            timeout=30,  # generous: the client gives up after ~0.3 s
        )
    finally:
        os.kill(valkey.process.pid, signal.SIGCONT)
    assert all(isinstance(o, StoreDown) for o in outcomes)
    assert isinstance(await limits.reserve(ask, NOW), Reservation)


async def test_concurrent_requests_share_one_refresh(valkey: ValkeyServer) -> None:
    a, _ = _pair(valkey.url)
    probe = Wire(valkey.url, 5.0)
    await a.sync(["d", "e"], 0.0)  # scripts loaded, connection open

    async def scripts_run() -> int:
        stats = await probe.execute("INFO", "commandstats")
        line = next(x for x in stats.splitlines() if x.startswith("cmdstat_evalsha:"))
        return int(line.split("calls=")[1].split(",")[0])

    before = await scripts_run()
    await asyncio.gather(*(a.sync(["d", "e"], 0.0) for _ in range(50)))
    assert await scripts_run() - before == 1  # not one round trip per request
    await a.sync(["d", "e"], 0.0)
    assert await scripts_run() - before == 2  # a later request refreshes again
