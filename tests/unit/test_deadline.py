"""The runner's attempt deadlines (engine/deadline.py) keep asyncio.timeout's promises: work past
its deadline ends in TimeoutError, work that ends in time is never cancelled afterwards, someone
else's cancellation stays a CancelledError, out-of-order deadlines each fire, finished entries do
not pile up, and a second event loop is served too."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from triage.engine.deadline import COMPACT_AT, Deadlines

LONG = 30.0  # work that would outlast any test: only a deadline ends it


async def _bounded(deadlines: Deadlines, seconds: float, work: float) -> str:
    try:
        with deadlines.within(seconds):
            await asyncio.sleep(work)
    except TimeoutError:
        return "timeout"
    return "done"


def test_work_past_its_deadline_ends_in_timeout_error_and_the_task_is_not_left_cancelled() -> None:
    async def main() -> tuple[str, int]:
        outcome = await _bounded(Deadlines(), 0.05, LONG)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # a leftover cancellation would surface here
        return outcome, task.cancelling()

    assert asyncio.run(main()) == ("timeout", 0)


def test_work_done_in_time_is_never_cancelled_later() -> None:
    async def main() -> str:
        deadlines = Deadlines()
        assert await _bounded(deadlines, 0.05, 0) == "done"
        await asyncio.sleep(0.2)  # well past the deadline: a stale timer would cancel this
        return "survived"

    assert asyncio.run(main()) == "survived"


def test_someone_elses_cancellation_stays_a_cancelled_error() -> None:
    async def main() -> None:
        deadlines = Deadlines()
        task = asyncio.create_task(_bounded(deadlines, LONG, LONG))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancellation_at_the_deadline_from_elsewhere_is_not_swallowed() -> None:
    async def main() -> None:
        deadlines = Deadlines()

        async def work() -> None:
            with deadlines.within(0.05):
                await asyncio.sleep(LONG)

        task = asyncio.create_task(work())
        await asyncio.sleep(0.05)  # both at once: the deadline and an outside cancel
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_deadlines_added_out_of_order_each_fire_for_their_own_work() -> None:
    async def main() -> list[tuple[str, str]]:
        deadlines = Deadlines()
        rng = random.Random(7)
        cases = []
        for _ in range(200):
            expected = rng.choice(["timeout", "done"])
            seconds = rng.uniform(0.01, 0.3)
            work = LONG if expected == "timeout" else 0
            cases.append((expected, _bounded(deadlines, seconds, work)))
        rng.shuffle(cases)
        # A long deadline first, then shorter ones: the timer must move earlier.
        first = asyncio.create_task(_bounded(deadlines, 0.5, LONG))
        await asyncio.sleep(0)
        results = await asyncio.gather(*(coro for _, coro in cases))
        pairs = [(expected, got) for (expected, _), got in zip(cases, results, strict=True)]
        pairs.append(("timeout", await first))
        return pairs

    for expected, got in asyncio.run(main()):
        assert got == expected


def test_nested_deadlines_only_the_expired_one_fires() -> None:
    async def main() -> tuple[str, str]:
        deadlines = Deadlines()
        with deadlines.within(LONG):
            inner = await _bounded(deadlines, 0.05, LONG)
            await asyncio.sleep(0.1)  # the outer one still holds; nothing cancels this
        return inner, "outer done"

    assert asyncio.run(main()) == ("timeout", "outer done")


def test_finished_entries_do_not_pile_up() -> None:
    async def main() -> int:
        deadlines = Deadlines()
        for _ in range(5000):
            with deadlines.within(LONG):
                await asyncio.sleep(0)
        return len(deadlines)

    assert asyncio.run(main()) <= COMPACT_AT


def test_a_deadlines_object_serves_later_loops_and_a_second_running_loop() -> None:
    deadlines = Deadlines()
    assert asyncio.run(_bounded(deadlines, 0.05, LONG)) == "timeout"
    assert asyncio.run(_bounded(deadlines, 0.05, LONG)) == "timeout"  # the first loop is closed

    results: list[str] = []
    started = threading.Event()

    async def hold_first_loop() -> None:
        with deadlines.within(LONG):
            started.set()
            await asyncio.sleep(0.5)

    def other_loop() -> None:
        started.wait(10)
        results.append(asyncio.run(_bounded(deadlines, 0.05, LONG)))
        results.append(asyncio.run(_bounded(deadlines, LONG, 0)))

    thread = threading.Thread(target=other_loop)
    thread.start()
    asyncio.run(hold_first_loop())
    thread.join(30)
    assert results == ["timeout", "done"]


def test_a_deadline_outside_a_task_is_refused() -> None:
    with pytest.raises(RuntimeError), Deadlines().within(1.0):
        pass
