"""Shared fixtures: configs built in code, the app over real HTTP or ASGI, the fake upstream."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from triage.fakeupstream import FakeUpstreamThread  # noqa: E402


@pytest.fixture
def fake() -> Iterator[FakeUpstreamThread]:
    """A fresh fake OpenAI/Ollama/Anthropic upstream on a loopback port."""
    with FakeUpstreamThread() as upstream:
        yield upstream


@pytest.fixture
def fake2() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread() as upstream:
        yield upstream
