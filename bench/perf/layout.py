"""Which cores each process of a bench runs on.

Spread (enough cores: every server's workers plus at least two for the load side): each server
gets cores of its own, `--workers N` gets N of them, and the load generator, the backend fake
and this orchestrator share every core left over (the first ones). That is the layout of the
16-core measurements in issue 16: nothing under test competes with the load side or with
another server.

Shared (fewer cores, e.g. the 2-core dev box): every one-worker server on the first core, the
load side on the rest, multi-worker servers unpinned. Unpinned (BENCH_PIN=0 or one core): no
affinity is set at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MIN_LOAD_CORES = 2


@dataclass(frozen=True)
class Layout:
    mode: str  # "spread", "shared" or "unpinned"
    load: frozenset[int] | None = None
    servers: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def of(self, key: str) -> frozenset[int] | None:
        """The cores of server `key`; None: not pinned."""
        return self.servers.get(key)

    @property
    def spread(self) -> bool:
        return self.mode == "spread"

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "load": sorted(self.load) if self.load is not None else None,
            "servers": {k: sorted(v) for k, v in self.servers.items()},
        }


def plan(cpus: Sequence[int], demands: Mapping[str, int], pin: bool) -> Layout:
    """A layout for servers that need `demands[key]` cores each (their worker count)."""
    ordered = sorted(cpus)
    if not pin or len(ordered) < 2:
        return Layout("unpinned")
    need = sum(demands.values())
    if len(ordered) - need >= MIN_LOAD_CORES:
        load_count = len(ordered) - need
        servers, at = {}, load_count
        for key, count in demands.items():
            servers[key] = frozenset(ordered[at : at + count])
            at += count
        return Layout("spread", frozenset(ordered[:load_count]), servers)
    single = {key: frozenset(ordered[:1]) for key, count in demands.items() if count == 1}
    return Layout("shared", frozenset(ordered[1:]), single)
