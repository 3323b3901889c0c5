"""Deadlines of the attempts in flight, on one loop timer between them.

`asyncio.timeout` arms a timer of the loop's own for each use; under uvloop that is a libuv timer
allocated, started, stopped and closed per attempt, about 30,000 instructions (a tenth of the
runner and native lane together; issue 16). Here every attempt's deadline goes into one heap and
one loop timer is armed for the earliest; an attempt that ends only marks its entry, which is
dropped when it reaches the top of the heap (or when finished entries outnumber live ones).

The semantics are `asyncio.timeout`'s: past its deadline the task is cancelled, and the
cancellation leaves the `with` block as `TimeoutError`, unless someone else cancelled the task
too (then it stays a `CancelledError`). The timer belongs to one event loop; a `Deadlines` used
from a second loop while its first still runs (or still has deadlines pending) gives those
attempts a timer each.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from types import TracebackType

PENDING, EXPIRED, EXITED = 0, 1, 2
COMPACT_AT = 64  # heap entries below which finished ones are never swept out early


class Deadline:
    """One attempt's bound: a `with` block that raises TimeoutError once `seconds` pass."""

    __slots__ = ("_owner", "_seconds", "_task", "_cancelling", "_handle", "state", "when")

    def __init__(self, owner: Deadlines, seconds: float) -> None:
        self._owner = owner
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._handle: asyncio.TimerHandle | None = None  # its own timer (a second loop)
        self.state = PENDING
        self.when = math.inf

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._owner._add(self, task.get_loop())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state, self.state = self.state, EXITED
        if self._handle is not None:
            self._handle.cancel()
        elif state == PENDING:
            self._owner._live -= 1
        if state == EXPIRED:
            assert self._task is not None  # set on entry
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def expire(self) -> None:
        if self.state == PENDING:
            self.state = EXPIRED
            assert self._task is not None  # set on entry
            self._task.cancel()


class Deadlines:
    """The deadlines of one engine's attempts; `within(seconds)` bounds one of them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._live = 0

    def within(self, seconds: float) -> Deadline:
        return Deadline(self, seconds)

    def __len__(self) -> int:
        """Entries held, finished ones not yet swept out included (for tests)."""
        return len(self._heap)

    def _add(self, deadline: Deadline, loop: asyncio.AbstractEventLoop) -> None:
        deadline.when = when = loop.time() + deadline._seconds
        if loop is not self._loop and not self._rebind(loop):
            deadline._handle = loop.call_at(when, deadline.expire)
            return
        self._live += 1
        heap = self._heap
        if len(heap) >= COMPACT_AT and len(heap) > 4 * self._live:
            heap[:] = [entry for entry in heap if entry[2].state == PENDING]
            heapq.heapify(heap)
        heapq.heappush(heap, (when, next(self._order), deadline))
        if when < self._timer_at:
            self._arm(loop, when)

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Take `loop` on if the loop held so far is closed, or stopped with no deadline
        pending (or none was held); False otherwise."""
        held = self._loop
        if held is not None and not held.is_closed() and (held.is_running() or self._live):
            return False
        self._loop, self._heap, self._live = loop, [], 0
        self._timer, self._timer_at = None, math.inf
        return True

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(when, self._fire), when

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        loop = self._loop
        assert loop is not None  # the timer runs on the loop that armed it
        now, heap = loop.time(), self._heap
        while heap and (heap[0][0] <= now or heap[0][2].state != PENDING):
            _, _, deadline = heapq.heappop(heap)
            if deadline.state == PENDING:
                self._live -= 1
                deadline.expire()
        if heap:
            self._arm(loop, heap[0][0])
