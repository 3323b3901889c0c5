"""The timing loop the micro-benchmarks share (classify_bench.py, sensitive_bench.py)."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence

WARMUP_CALLS = 200


def time_calls(
    call: Callable[[], object], n: int, clock: Callable[[], int] = time.perf_counter_ns
) -> list[int]:
    """`n` timings of `call` in nanoseconds of `clock` (wall by default; `time.thread_time_ns`
    for this thread's CPU), sorted, after a warm-up and with GC paused."""
    for _ in range(min(WARMUP_CALLS, n)):
        call()
    timings = []
    gc.disable()
    try:
        for _ in range(n):
            start = clock()
            call()
            timings.append(clock() - start)
    finally:
        gc.enable()
    timings.sort()
    return timings


def report(name: str, timings: Sequence[int], width: int = 24) -> str:
    p50 = timings[len(timings) // 2] / 1000
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))] / 1000
    mean = statistics.fmean(timings) / 1000
    return f"{name:<{width}} p50={p50:8.1f}us  p99={p99:8.1f}us  mean={mean:8.1f}us"
