"""The unchecked adders the accountant counts with (metrics.adder, metrics.observer) expose
exactly what prometheus-client's own `inc` and `observe` would: the same text on /metrics for
the same amounts, bucket edges, zero, huge values, infinity and NaN included, in both the
single-process and the multiprocess value classes."""

from __future__ import annotations

import math
import random

from prometheus_client import CollectorRegistry, generate_latest

from triage.metrics import FAST_BUCKETS, LATENCY_BUCKETS, Metrics, adder, observer

EDGES = [0.0, *LATENCY_BUCKETS, *FAST_BUCKETS, 1e-9, 1e9, math.inf, math.nan]


def _amounts(seed: int) -> list[float]:
    rng = random.Random(seed)
    amounts = list(EDGES)
    amounts += [b * (1 + d) for b in (*LATENCY_BUCKETS, *FAST_BUCKETS) for d in (-1e-12, 1e-12)]
    amounts += [rng.expovariate(1 / 0.01) for _ in range(500)]
    amounts += [rng.uniform(0, 200) for _ in range(200)]
    rng.shuffle(amounts)
    return amounts


def _exposition(fast: bool, amounts: list[float]) -> bytes:
    registry = CollectorRegistry()
    m = Metrics(registry)
    histograms = [m.duration.labels("chat", "g"), m.overhead.labels("chat")]
    counters = [m.tokens.labels("in", "g"), m.cost.labels("chat", "g")]
    observes = [observer(h) if fast else h.observe for h in histograms]
    incs = [adder(c) if fast else c.inc for c in counters]
    for amount in amounts:
        for observe in observes:
            observe(amount)
        if amount >= 0 and not math.isnan(amount):  # counters never take a negative
            for inc in incs:
                inc(amount)
    return _without_created(generate_latest(registry))


def _without_created(text: bytes) -> bytes:
    """The exposition less each child's creation time, which two registries never share."""
    return b"\n".join(line for line in text.splitlines() if b"_created" not in line)


def test_adders_expose_what_inc_and_observe_expose() -> None:
    for seed in range(3):
        amounts = _amounts(seed)
        assert _exposition(True, amounts) == _exposition(False, amounts)


def test_each_edge_alone_lands_in_the_same_bucket() -> None:
    for amount in EDGES:
        assert _exposition(True, [amount]) == _exposition(False, [amount])


def test_adders_count_in_multiprocess_files_as_inc_does(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import values
    from prometheus_client.multiprocess import MultiProcessCollector

    outputs = []
    for fast in (True, False):
        directory = tmp_path / ("fast" if fast else "public")
        directory.mkdir()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        values.ValueClass = values.get_value_class()
        try:
            _exposition(fast, _amounts(7))
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(directory))
            outputs.append(_without_created(generate_latest(registry)))
        finally:
            monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
            values.ValueClass = values.get_value_class()
    assert outputs[0] == outputs[1]
    assert b"triage_tokens_total" in outputs[0]
