"""Fixtures for the real llama.cpp suite: the tiny models and one server for the session, and
Triage in front of it on each lane.

gguf and sentencepiece are imported inside `tiny_models` only: without `make test-real` they are
not installed, and this file must still import so that the test modules can skip visibly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.helpers import serve
from tests.real.gateway import Gateway, triage_config
from tests.real.server import LlamaServer, llama_server
from triage.api import create_app
from triage.engine.lanes import Lanes, lane_name

if TYPE_CHECKING:
    from tests.real.make_model import TinyModels


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    from tests.real.make_model import make_models

    return make_models(tmp_path_factory.mktemp("tiny-models"), seed=0)


@pytest.fixture(scope="session")
def llama(
    tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    with llama_server(tiny_models, tmp_path_factory.mktemp("llama-server")) as server:
        yield server


@pytest.fixture(scope="module", params=["native", "litellm"])
def any_lane(request: pytest.FixtureRequest, llama: LlamaServer) -> Iterator[Gateway]:
    """Triage with every deployment pinned to one lane."""
    config = triage_config(llama)
    with serve(create_app(config, lanes=Lanes(config, force=request.param))) as url:
        yield Gateway(request.param, url)


@pytest.fixture(scope="module")
def gateway(llama: LlamaServer) -> Iterator[str]:
    """Triage as configured: `auto` puts `hosted_vllm/…` deployments on the native lane."""
    config = triage_config(llama)
    assert {lane_name(config, d) for d in config.model_list} == {"native"}
    with serve(create_app(config)) as url:
        yield url
