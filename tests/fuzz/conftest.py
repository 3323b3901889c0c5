"""Fuzz fixtures: one fake upstream and one served Triage for the whole session, a tally of what
the hostile inputs got back, and the summary line it prints at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from tests.fuzz.sanity import Tally
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

TALLY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def fuzz_upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def fuzz_app(fuzz_upstream: FakeUpstreamThread) -> FastAPI:
    """The real app, its deployments on the fake upstream so well-formed requests succeed."""
    base = fuzz_upstream.url + "/v1"
    config = config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/fake-model", base),
                deployment("emb", "hosted_vllm/fake-embedding", base),
            ],
            "router_settings": {"num_retries": 0},
        }
    )
    return create_app(config)


@pytest.fixture(scope="session")
def fuzz_gateway(fuzz_app: FastAPI) -> Iterator[str]:
    with serve(fuzz_app) as url:
        yield url


@pytest.fixture(scope="session")
def tally(pytestconfig: pytest.Config) -> Tally:
    return pytestconfig.stash.setdefault(TALLY, Tally())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = terminalreporter.config.stash.get(TALLY, None)
    if tally is not None:
        terminalreporter.write_line(tally.summary())
