"""The tally (telemetry/tally.py): hot-path counts kept as plain numbers and published into
prometheus-client's values on collect expose what prometheus-client's own `inc`, `observe` and
`dec` would, in both value classes, however often they are published in between; a collect on
another thread while the counting goes on loses nothing; negative counts are still refused."""

from __future__ import annotations

import asyncio
import math
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from triage.metrics import FAST_BUCKETS, LATENCY_BUCKETS, Metrics
from triage.telemetry.tally import STALE_AFTER, STAMP_PREFIX, Publisher, await_siblings

EDGES = [0.0, *LATENCY_BUCKETS, *FAST_BUCKETS, 1e-9, 1e9, math.inf, math.nan]


def _amounts(seed: int) -> list[float]:
    rng = random.Random(seed)
    amounts = list(EDGES)
    amounts += [b * (1 + d) for b in (*LATENCY_BUCKETS, *FAST_BUCKETS) for d in (-1e-12, 1e-12)]
    amounts += [rng.expovariate(1 / 0.01) for _ in range(300)]
    amounts += [float(rng.randrange(0, 5000)) for _ in range(200)]  # token counts
    rng.shuffle(amounts)
    return amounts


def _ways(m: Metrics, fast: bool) -> tuple[list[Callable[[float], None]], ...]:
    """(observes, counter incs, gauge inc and dec): the tally's or prometheus-client's own."""
    histograms = [m.duration.labels("chat", "g"), m.overhead.labels("chat")]
    counters = [m.tokens.labels("in", "g"), m.cost.labels("chat", "g")]
    if not fast:
        level = m.in_flight
        return [h.observe for h in histograms], [c.inc for c in counters], [level.inc, level.dec]
    cells = m.tally.cells(*counters)

    def adder(i: int) -> Callable[[float], None]:
        def add(amount: float) -> None:
            cells[i] += amount

        return add

    twin = m.requests_in_flight
    observes = [m.tally.histogram(h) for h in histograms]
    return observes, [adder(i) for i in range(len(counters))], [twin.inc, twin.dec]


def _drive(registry: CollectorRegistry, fast: bool, amounts: list[float], every: int) -> None:
    """The same traffic through the tally (publishing on a collect every `every` amounts,
    0: never) or through prometheus-client's public methods."""
    observes, incs, (up, down) = _ways(Metrics(registry), fast)
    for i, amount in enumerate(amounts):
        for observe in observes:
            observe(amount)
        if amount >= 0 and not math.isnan(amount):  # counters never take a negative
            for inc in incs:
                inc(amount)
        up(1.0)
        if i % 3 == 0:
            down(1.0)
        if every and i % every == every - 1:
            generate_latest(registry)


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _same(fast: bytes, public: bytes, exact: bool) -> None:
    """Counts and buckets exactly; sums exactly when published once, else to rounding (a sum
    published in parts is added in another order)."""
    a, b = _samples(fast), _samples(public)
    assert a.keys() == b.keys()
    for key, value in b.items():
        if math.isnan(value):
            assert math.isnan(a[key]), key
        elif exact or not key[0].endswith(("_sum", "cost_usd_total")):
            assert a[key] == value, key
        else:
            assert math.isclose(a[key], value, rel_tol=1e-9), key


def _exposition(fast: bool, amounts: list[float], every: int) -> bytes:
    registry = CollectorRegistry()
    _drive(registry, fast, amounts, every)
    return generate_latest(registry)


@pytest.mark.parametrize("every", [0, 1, 7, 100])
def test_tally_exposes_what_inc_observe_and_dec_expose(every: int) -> None:
    for seed in range(2):
        amounts = _amounts(seed)
        _same(_exposition(True, amounts, every), _exposition(False, amounts, every), every == 0)


def test_each_edge_alone_lands_in_the_same_bucket() -> None:
    for amount in EDGES:
        for every in (0, 1):
            _same(_exposition(True, [amount], every), _exposition(False, [amount], 0), True)


def test_tally_counts_in_multiprocess_files_as_inc_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = []
    for fast in (True, False):
        directory = tmp_path / ("fast" if fast else "public")
        directory.mkdir()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        values.ValueClass = values.get_value_class()
        try:
            registry = CollectorRegistry()
            _drive(registry, fast, _amounts(7), 13)
            list(registry.collect())  # the last publish (a scrape's first step)
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=str(directory))  # type: ignore[no-untyped-call]
            outputs.append(generate_latest(merged))
        finally:
            monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
            values.ValueClass = values.get_value_class()
    _same(outputs[0], outputs[1], False)
    assert b"triage_tokens_total" in outputs[0]


def test_a_negative_count_is_refused_and_counts_nothing() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    count = m.tally.counter(m.classifications.labels("chat", "rule"))
    count.inc()
    with pytest.raises(ValueError, match="non-negative"):
        count.inc(-1.0)
    labels = {"task": "chat", "reason": "rule"}
    assert registry.get_sample_value("triage_classification_total", labels) == 1.0


def test_collecting_on_another_thread_while_counting_loses_nothing() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    cells = m.tally.cells(m.tokens.labels("in", "g"))
    observe = m.tally.histogram(m.duration.labels("chat", "g"))
    done = threading.Event()
    seen: list[float] = []

    def scrape() -> None:
        while not done.is_set():
            seen.append(
                registry.get_sample_value("triage_tokens_total", {"direction": "in", "route": "g"})
                or 0.0
            )

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for _ in range(200_000):
            cells[0] += 1.0
            observe(0.003)
    finally:
        done.set()
        thread.join()
    assert len(seen) > 1 and seen == sorted(seen)  # published totals only ever grow
    assert (
        registry.get_sample_value("triage_tokens_total", {"direction": "in", "route": "g"})
        == 200_000
    )
    labels = {"endpoint": "chat", "route": "g"}
    assert registry.get_sample_value("triage_request_duration_seconds_count", labels) == 200_000


def _stamp(directory: Path, pid: int, at_ns: int) -> Path:
    path = directory / f"{STAMP_PREFIX}{pid}"
    path.touch()
    os.utime(path, ns=(at_ns, at_ns))
    return path


async def test_a_scrape_waits_for_a_live_sibling_to_publish(tmp_path: Path) -> None:
    """A sibling that last published before the scrape began is waited for; what it published
    before stamping is there once the wait ends. Its own and stale stamps are not waited for."""
    began = time.time_ns()
    _stamp(tmp_path, os.getpid(), began - 10**8)  # this worker's own: never waited for
    _stamp(tmp_path, 999_999_999, began - int((STALE_AFTER + 1) * 1e9))  # a worker long gone
    sibling = _stamp(tmp_path, 999_999_998, began - 10**8)
    published: list[str] = []

    async def sibling_publishes() -> None:
        await asyncio.sleep(0.2)
        published.append("counts")
        now = time.time_ns()
        os.utime(sibling, ns=(now, now))

    task = asyncio.create_task(sibling_publishes())
    await await_siblings(str(tmp_path), began)
    assert published == ["counts"]
    await task


async def test_the_publisher_stamps_while_running_and_publishes_at_stop(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    observe = m.tally.histogram(m.duration.labels("chat", "g"))
    publisher = Publisher(m.tally, str(tmp_path)).start()
    stamp = tmp_path / f"{STAMP_PREFIX}{os.getpid()}"
    began = time.time_ns()
    await await_siblings(str(tmp_path), began)  # its own stamp: no wait
    deadline = time.monotonic() + 10
    while not stamp.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert stamp.exists()
    observe(0.01)
    labels = {"endpoint": "chat", "route": "g"}
    assert m.duration.labels("chat", "g")._sum.get() == 0.0  # type: ignore[attr-defined]
    await publisher.stop()
    assert m.duration.labels("chat", "g")._sum.get() == 0.01  # type: ignore[attr-defined]
    assert registry.get_sample_value("triage_request_duration_seconds_count", labels) == 1.0
    assert not stamp.exists()  # a stopped worker is not waited for
