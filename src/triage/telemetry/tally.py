"""Hot-path metric updates as plain numbers, published into prometheus-client on collect.

prometheus-client takes a lock on every increment (`MutexValue.inc`) and, with several
workers, also writes the new value into a memory-mapped file (`MmapedValue.inc`): about a dozen
of those per request. Instead the request path adds to plain floats (`cells[i] += amount`, no
lock, no file) that this module publishes into the children's own values:

- on every collect of the registry (the `Tally` is registered on it first, so GET /metrics,
  `generate_latest` and `get_sample_value` always see every count made before they ran);
- in multiprocess mode (`triage serve --workers N`), also every `PUBLISH_EVERY` seconds and at
  shutdown (`Publisher`), because the scraping worker reads the other workers' files.
  A scrape waits (at most `SCRAPE_WAIT` seconds) until every live sibling has published once
  after the scrape began (each publisher stamps a file beside the metric files), so a count made
  before the scrape began is on it. A worker killed with SIGKILL loses at most its last
  `PUBLISH_EVERY` seconds of counts; a stuck or killed sibling delays scrapes by at most
  `SCRAPE_WAIT` until its stamp is `STALE_AFTER` seconds old.

Each cell holds its running total; publishing adds `total - published` to the child's value,
so other writers of the same child (a direct `.inc()` elsewhere) keep adding up. Cells are
written only on the event loop's thread (the app is single-threaded there); publishing may run
on any thread (a collect) and is serialised by a lock, and only reads the cells.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

PUBLISH_EVERY = 0.5
SCRAPE_WAIT = 2.0
STALE_AFTER = 5.0
STAMP_PREFIX = "triage-published-"  # not *.db: MultiProcessCollector reads only those

Observe = Callable[[float], None]


class _Value(Protocol):
    def inc(self, amount: float) -> None: ...


class _Block:
    """Cells and the values they publish into, one for one."""

    __slots__ = ("cells", "published", "targets")

    def __init__(self, targets: list[_Value]) -> None:
        self.targets = targets
        self.cells = [0.0] * len(targets)
        self.published = [0.0] * len(targets)

    def publish(self) -> None:
        published, targets = self.published, self.targets
        for i, total in enumerate(self.cells):
            if total != published[i]:  # NaN publishes NaN again, as NaN + NaN would
                targets[i].inc(total - published[i])
                published[i] = total


class Count:
    """A counter child's hot twin: `inc` refuses a negative amount, as Counter.inc does."""

    __slots__ = ("_cells",)

    def __init__(self, cells: list[float]) -> None:
        self._cells = cells

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._cells[0] += amount


class Level:
    """A gauge child's hot twin, for gauges moved by inc and dec (not set)."""

    __slots__ = ("_cells",)

    def __init__(self, cells: list[float]) -> None:
        self._cells = cells

    def inc(self, amount: float = 1.0) -> None:
        self._cells[0] += amount

    def dec(self, amount: float = 1.0) -> None:
        self._cells[0] -= amount


class Tally:
    """The registry's hot cells. A collector that yields nothing: collecting publishes."""

    def __init__(self) -> None:
        self._blocks: list[_Block] = []
        self._lock = threading.Lock()

    def cells(self, *children: Counter | Gauge) -> list[float]:
        """One float per child, for the caller to add to (`cells[i] += amount`, never a
        negative amount for a counter: the caller checks); published at the next collect."""
        return self._block([_value(child) for child in children]).cells

    def counter(self, child: Counter) -> Count:
        return Count(self.cells(child))

    def gauge(self, child: Gauge) -> Level:
        return Level(self.cells(child))

    def histogram(self, child: Histogram) -> Observe:
        """`child.observe`, into cells: the same sum and buckets (a NaN counts in no bucket)."""
        total, buckets = getattr(child, "_sum", None), getattr(child, "_buckets", None)
        bounds = getattr(child, "_upper_bounds", None)
        if total is None or buckets is None or bounds is None or len(buckets) != len(bounds):
            raise TypeError("a bound Histogram child of prometheus-client 0.2x is expected")
        cells = self._block([total, *buckets]).cells
        uppers, top = [float(b) for b in bounds], float(bounds[-1])

        def observe(amount: float) -> None:
            cells[0] += amount
            if amount <= top:
                cells[bisect_left(uppers, amount) + 1] += 1.0

        return observe

    def publish(self) -> None:
        with self._lock:
            for block in self._blocks:
                block.publish()

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        self.publish()
        return ()

    def _block(self, targets: list[_Value]) -> _Block:
        block = _Block(targets)
        with self._lock:
            self._blocks.append(block)
        return block


def _value(child: Counter | Gauge) -> _Value:
    value = getattr(child, "_value", None)
    if value is None or not callable(getattr(value, "inc", None)):
        raise TypeError("a bound Counter or Gauge child of prometheus-client 0.2x is expected")
    return value  # type: ignore[no-any-return]


class Publisher:
    """Multiprocess mode: publishes this worker's cells every `PUBLISH_EVERY` seconds into its
    metric files, stamps its file, and publishes once more when stopped (at shutdown)."""

    def __init__(self, tally: Tally, directory: str | None) -> None:
        self.tally = tally
        self.stamp = Path(directory, f"{STAMP_PREFIX}{os.getpid()}") if directory else None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Publisher:
        if self.stamp is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._every())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.tally.publish()
        if self.stamp is not None:
            self.stamp.unlink(missing_ok=True)  # gone: scrapes stop waiting for this worker

    def publish(self) -> None:
        began = time.time_ns()  # every count made before this is in the files afterwards
        self.tally.publish()
        if self.stamp is not None:
            self.stamp.touch()
            os.utime(self.stamp, ns=(began, began))

    async def _every(self) -> None:
        while True:
            with contextlib.suppress(OSError):  # a vanished directory: keep counting
                self.publish()
            await asyncio.sleep(PUBLISH_EVERY)


async def await_siblings(directory: str, since_ns: int) -> None:
    """Wait until every live sibling worker has published after `since_ns` (wall clock), for
    at most SCRAPE_WAIT seconds. A stamp older than STALE_AFTER is a worker gone."""
    polls = max(1, int(SCRAPE_WAIT / (PUBLISH_EVERY / 10)))
    for _ in range(polls):
        if not _behind(directory, since_ns):
            return
        await asyncio.sleep(PUBLISH_EVERY / 10)


def _behind(directory: str, since_ns: int) -> bool:
    oldest_live, own = since_ns - int(STALE_AFTER * 1e9), f"{STAMP_PREFIX}{os.getpid()}"
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not entry.name.startswith(STAMP_PREFIX) or entry.name == own:
                continue
            with contextlib.suppress(OSError):
                stamped = entry.stat().st_mtime_ns
                if oldest_live <= stamped < since_ns:
                    return True
    return False
