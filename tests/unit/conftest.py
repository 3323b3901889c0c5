"""Fixtures shared by the unit tests of the fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from triage.fakeupstream import FakeUpstreamThread


@pytest.fixture
def client(fake: FakeUpstreamThread) -> Iterator[openai.OpenAI]:
    """The official SDK pointed at the `fake` upstream, with its own retries off."""
    with openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk
