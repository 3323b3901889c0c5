"""Which fault, if any, a request gets: per-request header, model-name prefix, queue, then chaos.

Owns the one-shot fault queue and the seeded chaos RNG. Both are guarded by a lock because tests
push faults from their own thread while the server's loop thread consumes them.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Sequence

from triage.fakeupstream.settings import Chaos, Fault

# TensorZero-style magic model names: `fail-503`, `hang`, `slow-250`, `cut-2`, `reset`,
# `context-window`, `content-policy` (anything may follow after a `-` or `:`).
_MODEL_FAULT = re.compile(
    r"^(?:fail-(?P<status>\d{3})|(?P<hang>hang)|slow-(?P<slow>\d+)|cut-(?P<cut>\d+)"
    r"|(?P<reset>reset)|(?P<ctx>context-window)|(?P<policy>content-policy))(?:$|[-:/])"
)


def model_fault(model: str) -> Fault | None:
    """The fault a magic model name asks for, or None for an ordinary model."""
    match = _MODEL_FAULT.match(model)
    if match is None:
        return None
    if match["status"]:
        return Fault.parse({"kind": "status", "status": match["status"]})
    if match["slow"]:
        return Fault.parse({"kind": "slow", "latency_ms": match["slow"]})
    if match["cut"]:
        return Fault.parse({"kind": "cut_stream", "after_chunks": match["cut"]})
    if match["hang"]:
        return Fault(kind="hang")
    if match["reset"]:
        return Fault(kind="connection_reset")
    return Fault(kind="context_window" if match["ctx"] else "content_policy", status=400)


class FaultSource:
    """The one-shot fault queue plus optional chaos; thread-safe."""

    def __init__(self, faults: Sequence[Fault] = (), chaos: Chaos | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: list[list[Fault | int]] = []
        self._chaos: Chaos | None = None
        self._rng = random.Random(0)
        self.replace(faults)
        self.set_chaos(chaos)

    def replace(self, faults: Sequence[Fault]) -> None:
        with self._lock:
            self._queue = [[f, f.times] for f in faults if f.times > 0]

    def add(self, fault: Fault) -> None:
        if fault.times > 0:
            with self._lock:
                self._queue.append([fault, fault.times])

    def set_chaos(self, chaos: Chaos | None) -> None:
        """Install chaos and restart its RNG, so re-posting a seed replays the same sequence."""
        with self._lock:
            self._chaos = chaos
            self._rng = random.Random(chaos.seed if chaos else 0)

    @property
    def chaos(self) -> Chaos | None:
        return self._chaos

    def pending(self) -> list[Fault]:
        """Queued faults, each repeated as many times as it still applies."""
        with self._lock:
            out: list[Fault] = []
            for fault, remaining in self._queue:
                assert isinstance(fault, Fault) and isinstance(remaining, int)
                out.extend([fault] * remaining)
            return out

    def pick(self, model: str, path: str) -> Fault | None:
        """Consume the first queued fault matching this request, else roll the chaos dice."""
        if not self._queue and self._chaos is None:
            return None  # the benchmark fast path: no lock, no RNG
        with self._lock:
            fault = self._pop_queued(model, path)
            if fault is None and self._chaos is not None:
                fault = self._roll(self._chaos)
            return fault

    def _pop_queued(self, model: str, path: str) -> Fault | None:
        for index, entry in enumerate(self._queue):
            fault, remaining = entry
            assert isinstance(fault, Fault) and isinstance(remaining, int)
            if fault.model not in (None, model) or fault.path not in (None, path):
                continue
            if remaining <= 1:
                del self._queue[index]
            else:
                entry[1] = remaining - 1
            return fault
        return None

    def _roll(self, chaos: Chaos) -> Fault | None:
        draw = self._rng.random()
        for bound, fault in chaos.outcomes:
            if draw < bound:
                return fault
        return None
