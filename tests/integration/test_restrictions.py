"""A key's `models`, `tasks` and `data_policy` hold on every path a request can take: an alias,
a named group, and every fallback behind them."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

KEY = "tk-team-0123456789"
ENV = {"TEAM_KEY": KEY}
MSG = [{"role": "user", "content": "hello"}]
PROOF = [
    {
        "role": "user",
        "content": "Prove step by step that the square root of 2 is irrational, then derive "
        "the closed form of the sum of the first n odd numbers.",
    }
]


def _app(local: FakeUpstreamThread, cloud: FakeUpstreamThread, **key: Any) -> Any:
    data = {
        "model_list": [
            deployment("local", "hosted_vllm/small", local.url + "/v1", local=True),
            deployment("cloud", "openai/gpt-4o", cloud.url + "/v1"),
        ],
        "router_settings": {"fallbacks": [{"local": ["cloud"]}], "num_retries": 0},
        "triage": {"default_route": ["local"], "ledger": {"enabled": False}},
        "auth": {"keys": [{"id": "team", "key": "os.environ/TEAM_KEY", **key}]},
    }
    return create_app(config_from(data, ENV))


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)


def test_a_model_allow_list_stops_router_fallbacks(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=500, message="local is down", times=5)
    with serve(_app(fake, fake2, models=["local"])) as url, pytest.raises(openai.APIStatusError):
        _client(url).chat.completions.create(model="local", messages=MSG)  # type: ignore[arg-type]
    assert len(fake.requests()) >= 1
    assert fake2.requests() == []  # the fallback to cloud was cut from the plan


def test_without_an_allow_list_the_fallback_still_serves(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=500, message="local is down", times=5)
    with serve(_app(fake, fake2)) as url:
        reply = _client(url).chat.completions.with_raw_response.create(
            model="local",
            messages=MSG,  # type: ignore[arg-type]
        )
    assert reply.headers["x-triage-route"] == "cloud"


def test_an_alias_on_the_allow_list_reaches_what_its_routes_reach(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=500, message="local is down", times=5)
    with serve(_app(fake, fake2, models=["auto"])) as url:
        reply = _client(url).chat.completions.with_raw_response.create(
            model="auto",
            messages=MSG,  # type: ignore[arg-type]
        )
        with pytest.raises(openai.PermissionDeniedError):
            _client(url).chat.completions.create(model="cloud", messages=MSG)  # type: ignore[arg-type]
    assert reply.headers["x-triage-route"] == "cloud"  # auto's route falls back to cloud


def test_a_task_allow_list_classifies_requests_that_name_a_group(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    with serve(_app(fake, fake2, tasks=["classification"])) as url:
        for model in ("cloud", "auto"):
            with pytest.raises(openai.PermissionDeniedError):
                _client(url).chat.completions.create(model=model, messages=PROOF)  # type: ignore[arg-type]
        # The header cannot vouch for a named-group request: its content is classified.
        with pytest.raises(openai.PermissionDeniedError):
            _client(url).chat.completions.create(
                model="cloud",
                messages=PROOF,  # type: ignore[arg-type]
                extra_headers={"x-triage-task": "classification"},
            )
    assert fake.requests() == [] and fake2.requests() == []


def test_a_local_only_key_never_falls_back_to_the_cloud(
    fake: FakeUpstreamThread, fake2: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=500, message="local is down", times=5)
    with (
        serve(_app(fake, fake2, data_policy="local_only")) as url,
        pytest.raises(openai.APIStatusError),
    ):
        _client(url).chat.completions.create(model="local", messages=MSG)  # type: ignore[arg-type]
    assert fake2.requests() == []
