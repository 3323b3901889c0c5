"""One configuration's numbers in one cell, accumulated over interleaved rounds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile `q` (0..100) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class CellStats:
    count: int = 0
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0
    server_cpu: float = 0.0
    load_cpu: float = 0.0  # load generator + backend fake: the other core's work
    machine_cpu: float = 0.0  # every process on the box, ours included
    wall: float = 0.0  # between the /proc readings around each segment (>= elapsed)
    latency: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    rounds_rps: list[float] = field(default_factory=list)

    def add(self, run: dict[str, Any], cpu: tuple[float, float, float, float]) -> None:
        """One measured segment; `cpu` is (server, backend fake, whole machine) CPU seconds and
        the wall-clock seconds they were read over."""
        server_cpu, backend_cpu, machine_cpu, wall = cpu
        self.machine_cpu += machine_cpu
        self.wall += wall
        self.count += run["count"]
        self.errors += run["errors"]
        self.first_error = self.first_error or run["first_error"]
        self.elapsed += run["elapsed"]
        self.server_cpu += server_cpu
        self.load_cpu += run["cpu"] + backend_cpu
        self.latency += run["latency"]
        self.ttfb += run["ttfb"]
        self.rounds_rps.append(run["count"] / run["elapsed"] if run["elapsed"] else 0.0)

    def summary(self) -> dict[str, Any]:
        per, wall = self.elapsed or math.nan, self.wall or math.nan
        return {
            "requests": self.count,
            "errors": self.errors,
            "first_error": self.first_error,
            "rps": self.count / per,
            "rps_rounds": [round(r, 1) for r in self.rounds_rps],
            "p50_ms": percentile(self.latency, 50) * 1000,
            "p99_ms": percentile(self.latency, 99) * 1000,
            "ttfb_p50_ms": percentile(self.ttfb, 50) * 1000,
            "cpu_s_per_1k": self.server_cpu / self.count * 1000 if self.count else math.nan,
            "max_ms": max(self.latency, default=math.nan) * 1000,
            "server_core_busy": self.server_cpu / wall,
            "load_core_busy": self.load_cpu / wall,
            # Cores kept busy by processes that are not part of this bench: noise, if not 0.
            "other_cores_busy": max(0.0, self.machine_cpu - self.server_cpu - self.load_cpu) / wall,
        }
