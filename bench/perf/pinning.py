"""BENCH_PIN_STUDY=1: is pinning worth it? Repeated short runs of (b) and (c), alternating
between pinned (servers on core 0, load generator and backend fake on core 1) and unpinned,
and the run-to-run spread (coefficient of variation) of req/s and p50 in each mode.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import replace
from typing import Any

from perf import cells, procs
from perf.fleet import ALL_CPUS, Fleet, LoadGen
from perf.settings import LOAD_CPUS, SERVER_CPUS, BenchSettings, Scenario

REPS = 5
KEYS = ("b", "c")
CASES = (Scenario(0, 16, False), Scenario(0, 1, False), Scenario(0, 16, True))


def _apply(fleet: Fleet, loadgen: LoadGen, pinned: bool) -> None:
    for server in fleet.servers.values():
        procs.set_affinity(server.pid, SERVER_CPUS if pinned else ALL_CPUS)
    load = LOAD_CPUS if pinned else ALL_CPUS
    if fleet.backend is not None:
        procs.set_affinity(fleet.backend.pid, load)
    loadgen.affinity(load)
    os.sched_setaffinity(0, load)


def _spread(values: list[float]) -> dict[str, float]:
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "cv_pct": 100 * stdev / mean if mean else 0.0}


def study(fleet: Fleet, loadgen: LoadGen, settings: BenchSettings) -> dict[str, Any]:
    keys = [k for k in KEYS if k in fleet.servers]
    one = replace(settings, rounds=1, seconds=1.0, warmup=0.3)
    samples: dict[str, dict[str, list[float]]] = {}
    for rep in range(REPS):
        for pinned in (True, False) if rep % 2 == 0 else (False, True):
            _apply(fleet, loadgen, pinned)
            for case in CASES:
                for key, row in cells.measure(fleet, loadgen, case, keys, one).items():
                    name = f"{'pinned' if pinned else 'unpinned'} {case.key} {key}"
                    bucket = samples.setdefault(name, {"rps": [], "p50_ms": []})
                    bucket["rps"].append(row["rps"])
                    bucket["p50_ms"].append(row["p50_ms"])
    out = {name: {m: _spread(v) for m, v in s.items()} for name, s in samples.items()}
    print(f"{'mode / cell / config':34}{'req/s':>9}{'CV %':>7}{'p50 ms':>9}{'CV %':>7}")
    for name, row in sorted(out.items(), key=lambda item: item[0].split()[1:] + [item[0]]):
        rps, p50 = row["rps"], row["p50_ms"]
        print(
            f"{name:34}{rps['mean']:>9.0f}{rps['cv_pct']:>7.1f}{p50['mean']:>9.3f}"
            f"{p50['cv_pct']:>7.1f}"
        )
    return out
