"""What one `make bench` measures: the knobs read from the environment and the scenario grid.

BENCH_QUICK=1    a one-minute smoke (one short round per cell, one start-up per server)
BENCH_LITELLM=1  also measure LiteLLM's own proxy, installed into bench/.litellm-venv
BENCH_PIN=0      do not pin (default: bench/perf/layout.py spreads servers and the load side
                 over the cores found; on 2 cores servers share core 0, the load side core 1)
BENCH_PIN_STUDY=1  only compare pinned with unpinned run-to-run spread, then exit
BENCH_TARGETS=1  only the cells issue 16's targets read (1 and 16 clients, 0 ms, plain and
                 streamed, the paced stream) and the workers/replicas row, without the litellm
                 lane (d): about a third of the time, for a short turn on the device machine
BENCH_WORKERS_ONLY=1  only start-up, memory and the workers/replicas row (no grid cells)
BENCH_ROUNDS=N, BENCH_SECONDS=S  interleaved rounds per cell and measured seconds per round
                 (default 3 and 1.0): more of both narrow the run-to-run spread
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SERVER_CPUS = frozenset({0})  # BENCH_PIN_STUDY: the process being measured
LOAD_CPUS = frozenset({1})  # BENCH_PIN_STUDY: load generator, backend fake, this orchestrator
CONCURRENCY = (1, 16, 64)
LATENCIES_MS = (0, 50)
STREAM_CHUNKS = 20  # fake upstream: completion_tokens 20, chunk_tokens 1
PROMPT = "Is this review positive or negative? 'The battery died after two days.'"


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Scenario:
    latency_ms: int
    concurrency: int
    stream: bool
    tokens_per_second: float = 0.0  # 0: the fake sends a whole stream in one write

    @property
    def upstream(self) -> dict[str, float]:
        """The fake upstream's settings for this scenario (POST /_fake/config)."""
        return {"latency_ms": self.latency_ms, "tokens_per_second": self.tokens_per_second}

    @property
    def mode(self) -> str:
        return "stream" if self.stream else "plain"

    @property
    def key(self) -> str:
        paced = f"-paced{self.tokens_per_second:g}" if self.tokens_per_second else ""
        return f"{self.mode}-c{self.concurrency}-{self.latency_ms}ms{paced}"

    @property
    def title(self) -> str:
        paced = f", paced {self.tokens_per_second:g} tokens/s" if self.tokens_per_second else ""
        return f"{self.mode}, {self.concurrency} clients, upstream +{self.latency_ms} ms{paced}"


@dataclass(frozen=True)
class BenchSettings:
    quick: bool
    litellm: bool
    pin: bool
    pin_study: bool
    targets_only: bool
    workers_only: bool
    rounds: int  # interleaved rounds per cell; each configuration runs once per round
    seconds: float  # measured seconds per configuration per round
    warmup: float  # unmeasured seconds before each measured segment
    startups: int  # fresh spawns per server for the start-up median

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BenchSettings:
        quick = _flag(env, "BENCH_QUICK")
        return cls(
            quick=quick,
            litellm=_flag(env, "BENCH_LITELLM"),
            pin=_flag(env, "BENCH_PIN", default=True),
            pin_study=_flag(env, "BENCH_PIN_STUDY"),
            targets_only=_flag(env, "BENCH_TARGETS"),
            workers_only=_flag(env, "BENCH_WORKERS_ONLY"),
            rounds=int(env.get("BENCH_ROUNDS") or (1 if quick else 3)),
            seconds=float(env.get("BENCH_SECONDS") or (0.5 if quick else 1.0)),
            warmup=0.15 if quick else 0.3,
            startups=1 if quick else 3,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "quick": self.quick,
            "litellm": self.litellm,
            "pin": self.pin,
            "targets_only": self.targets_only,
            "workers_only": self.workers_only,
            "rounds": self.rounds,
            "seconds_per_round": self.seconds,
            "warmup_seconds": self.warmup,
            "startups": self.startups,
        }


def scenarios(targets_only: bool = False) -> list[Scenario]:
    """Grouped by upstream settings, so the fakes are reconfigured only once per group.

    The last cell paces the stream so each chunk arrives in its own read, as from a real
    model: unpaced, the fake's 20 chunks reach a gateway in one read, which a byte relay
    like (b) forwards in one write while a gateway that re-frames chunks writes 20 times.
    """
    grid = [
        Scenario(latency, concurrency, stream)
        for latency in LATENCIES_MS
        for stream in (False, True)
        for concurrency in CONCURRENCY
        if not targets_only or (latency == 0 and concurrency in (1, 16))
    ]
    return [*grid, PACED_SCENARIO]


WORKERS_SCENARIO = Scenario(latency_ms=0, concurrency=16, stream=False)
PACED_SCENARIO = Scenario(latency_ms=0, concurrency=16, stream=True, tokens_per_second=1000)
