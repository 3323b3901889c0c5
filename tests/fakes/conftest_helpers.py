"""Pytest fixtures around triage.fakeupstream, for the lead to re-export from tests/conftest.py:

    from tests.fakes.conftest_helpers import fake_upstream, fake_upstream_factory, running_fake

`fake_upstream` is a fresh FakeUpstreamThread per test (sync or async tests alike);
`fake_upstream_factory` starts several with custom settings; `running_fake` serves in the test's
own event loop (async tests only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from triage.fakeupstream import FakeSettings, FakeUpstreamThread, RunningFake, start_fake


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread() as fake:
        yield fake


@pytest.fixture
def fake_upstream_factory() -> Iterator[Callable[..., FakeUpstreamThread]]:
    """make(**settings) -> a started FakeUpstreamThread, stopped after the test."""
    started: list[FakeUpstreamThread] = []

    def make(**settings: Any) -> FakeUpstreamThread:
        fake = FakeUpstreamThread(FakeSettings(**settings)).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
async def running_fake() -> AsyncIterator[RunningFake]:
    running = await start_fake()
    try:
        yield running
    finally:
        await running.stop()
