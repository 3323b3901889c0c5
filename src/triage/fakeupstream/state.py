"""What the fake upstream remembers: recorded requests and request counters.

Both are written by the server's loop thread and read by tests from other threads, so every
access goes through one lock (uncontended, so it costs tens of nanoseconds on the fast path).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it. Header names are lower-cased; `authorization` is kept
    on purpose so tests can check the gateway forwards (or replaces) credentials."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    text: str | None
    time: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FakeStats:
    """Request counters. `cancelled`: the client went away before the answer was complete;
    `dropped`: the fake itself cut the connection (cut_stream, connection_reset)."""

    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    dropped: int = 0
    in_flight: int = 0
    faults: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Journal:
    """Recorded requests (bounded) plus stats, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.stats = FakeStats()

    def record(self, entry: RecordedRequest, limit: int) -> None:
        with self.lock:
            self.requests.append(entry)
            # Trim in batches so a long benchmark does not pay a list shift per request.
            if len(self.requests) > limit + max(1, limit // 10):
                del self.requests[: len(self.requests) - limit]

    def snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)

    def clear(self) -> int:
        with self.lock:
            count = len(self.requests)
            self.requests.clear()
            return count

    def begin(self) -> None:
        with self.lock:
            self.stats.requests += 1
            self.stats.in_flight += 1

    def end(self, outcome: str) -> None:
        """Close one in-flight request as "completed", "cancelled" or "dropped"."""
        with self.lock:
            self.stats.in_flight -= 1
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

    def count_fault(self) -> None:
        with self.lock:
            self.stats.faults += 1

    def stats_dict(self) -> dict[str, int]:
        with self.lock:
            return self.stats.as_dict()

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = FakeStats(in_flight=self.stats.in_flight)
