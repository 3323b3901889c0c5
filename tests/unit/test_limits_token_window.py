"""MemoryLimits keeps the per-minute token count as a running total (no scan of the window per
request, issue 16). Checked against a brute-force recount over random interleavings of
reservations, settlements (some after their tokens left the window) and time passing."""

from __future__ import annotations

import random
import tracemalloc
from decimal import Decimal

from triage.state.limits import WINDOW, Ask, MemoryLimits, Refusal, Reservation

NOW = 1_800_000_000.0


async def test_running_token_total_matches_a_recount() -> None:
    rng = random.Random(16)
    store = MemoryLimits(ttl=10_000.0)
    live: list[Reservation] = []
    counted: dict[str, tuple[float, int]] = {}  # id -> (at, tokens now counted)
    now = NOW
    for _ in range(3000):
        now += rng.choice([0.0, 0.5, 3.0, 25.0])
        if live and rng.random() < 0.45:
            held = live.pop(rng.randrange(len(live)))
            used = rng.randrange(0, held.tokens + 1)
            await store.settle(held, used, Decimal(0), now)
            counted[held.id] = (held.at, used)
        else:
            ask = Ask("k", rng.randrange(1, 5000), Decimal(0), tpm=10**12)
            got = await store.reserve(ask, now)
            assert not isinstance(got, Refusal)
            live.append(got)
            counted[got.id] = (now, ask.tokens)
        expected = sum(t for at, t in counted.values() if at > now - WINDOW)
        assert (await store.snapshot("k", now)).tokens_last_minute == expected


async def test_tpm_refuses_on_the_running_total_and_frees_as_the_window_slides() -> None:
    store = MemoryLimits()
    first = await store.reserve(Ask("k", 600, Decimal(0), tpm=1000), NOW)
    assert isinstance(first, Reservation)
    assert isinstance(await store.reserve(Ask("k", 500, Decimal(0), tpm=1000), NOW + 1), Refusal)
    await store.settle(first, 100, Decimal(0), NOW + 2)  # settled down: room again
    assert isinstance(
        await store.reserve(Ask("k", 500, Decimal(0), tpm=1000), NOW + 3), Reservation
    )
    assert isinstance(await store.reserve(Ask("k", 500, Decimal(0), tpm=1000), NOW + 4), Refusal)
    later = NOW + WINDOW + 3.5  # both earlier entries have left the window
    assert isinstance(await store.reserve(Ask("k", 900, Decimal(0), tpm=1000), later), Reservation)


async def test_the_window_holds_numbers_not_an_object_a_request() -> None:
    """A key holds a minute of its requests: at thousands a second that is memory, so each one
    costs a few numbers (two deque slots, its time, its token count), not a list of its own."""
    store = MemoryLimits()
    requests = 20_000
    asks = [Ask("k", 1000 + n, Decimal(0), tpm=10**12) for n in range(requests)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, ask in enumerate(asks):
            got = await store.reserve(ask, NOW + n * 0.001)  # all 20 s: inside the window
            assert isinstance(got, Reservation)
            await store.settle(got, ask.tokens - 1, Decimal(0), NOW + n * 0.001)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert (await store.snapshot("k", NOW + 20)).tokens_last_minute == sum(
        ask.tokens - 1 for ask in asks
    )
    assert grown / requests < 100, grown / requests  # ~160 bytes as [at, tokens, flag] lists
