"""Stored responses belong to the key that made them, expire after `responses.store_ttl`, and
can be turned off (`responses.store: false`); nothing of their content reaches the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

TEAM, OTHER, ADMIN = "sk-team-0123456789", "sk-other-0123456789", "sk-admin-0123456789"
ENV = {"TEAM": TEAM, "OTHER": OTHER, "ADMIN": ADMIN}
AS_TEAM = {"authorization": f"Bearer {TEAM}"}
AS_OTHER = {"authorization": f"Bearer {OTHER}"}
AS_ADMIN = {"authorization": f"Bearer {ADMIN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _config(fake: FakeUpstreamThread, tmp_path: Path, **responses: Any) -> Any:
    return config_from(
        {
            "model_list": [deployment("local", "hosted_vllm/tiny", fake.url + "/v1")],
            "router_settings": {"num_retries": 0},
            "responses": {"path": str(tmp_path / "responses.db"), **responses},
            "auth": {
                "admin_key": "os.environ/ADMIN",
                "keys": [
                    {"id": "team", "key": "os.environ/TEAM"},
                    {"id": "other", "key": "os.environ/OTHER"},
                ],
            },
        },
        ENV,
    )


async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30) as http,
    ):
        yield http


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(
    fake: FakeUpstreamThread, tmp_path: Path, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_config(fake, tmp_path, store_ttl=3600), wall_clock=clock)
    async for http in _client(app):
        yield http


async def _create(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    response = await http.post("/v1/responses", json={"model": "local", **body}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_another_key_gets_404_for_everything_stored(client: httpx.AsyncClient) -> None:
    mine = await _create(client, AS_TEAM, input="secret plans")
    rid = mine["id"]
    for headers in (AS_OTHER, AS_ADMIN):
        for method, path in (
            ("GET", f"/v1/responses/{rid}"),
            ("GET", f"/v1/responses/{rid}/input_items"),
            ("DELETE", f"/v1/responses/{rid}"),
        ):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 404, (method, path)
            assert "secret" not in response.text
    # Nor can another key continue it: the same answer as an id that never existed.
    stolen = await client.post(
        "/v1/responses",
        json={"model": "local", "input": "go on", "previous_response_id": rid},
        headers=AS_OTHER,
    )
    unknown = await client.post(
        "/v1/responses",
        json={"model": "local", "input": "go on", "previous_response_id": "resp_nope"},
        headers=AS_OTHER,
    )
    assert stolen.status_code == unknown.status_code == 400
    assert stolen.json()["error"]["code"] == unknown.json()["error"]["code"]
    # The owner still has it, whole.
    fetched = await client.get(f"/v1/responses/{rid}", headers=AS_TEAM)
    assert fetched.json() == mine


async def test_stored_endpoints_need_a_key(client: httpx.AsyncClient) -> None:
    mine = await _create(client, AS_TEAM, input="hello")
    for headers in ({}, {"authorization": "Bearer sk-wrong"}):
        response = await client.get(f"/v1/responses/{mine['id']}", headers=headers)
        assert response.status_code == 401
        create = await client.post("/v1/responses", json={"model": "local", "input": "x"})
        assert create.status_code == 401


async def test_concurrent_conversations_of_two_keys_stay_apart(
    client: httpx.AsyncClient,
) -> None:
    async def one(headers: dict[str, str], n: int) -> tuple[dict[str, str], str]:
        return headers, (await _create(client, headers, input=f"turn {n}"))["id"]

    made = await asyncio.gather(*(one((AS_TEAM, AS_OTHER)[n % 2], n) for n in range(20)))
    assert len({rid for _, rid in made}) == 20
    for headers, rid in made:
        mine = await client.get(f"/v1/responses/{rid}", headers=headers)
        theirs = await client.get(
            f"/v1/responses/{rid}", headers=AS_OTHER if headers is AS_TEAM else AS_TEAM
        )
        assert (mine.status_code, theirs.status_code) == (200, 404)


async def test_stored_responses_expire_after_the_ttl(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    first = await _create(client, AS_TEAM, input="hello")
    clock.now += 3599
    assert (await client.get(f"/v1/responses/{first['id']}", headers=AS_TEAM)).status_code == 200
    clock.now += 2
    assert (await client.get(f"/v1/responses/{first['id']}", headers=AS_TEAM)).status_code == 404
    late = await client.post(
        "/v1/responses",
        json={"model": "local", "input": "again", "previous_response_id": first["id"]},
        headers=AS_TEAM,
    )
    assert late.status_code == 400


async def test_store_off_keeps_nothing_and_refuses_previous_response_id(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    app = create_app(_config(fake, tmp_path, store=False))
    async for http in _client(app):
        made = await _create(http, AS_TEAM, input="hello")
        assert made["store"] is False
        missing = await http.get(f"/v1/responses/{made['id']}", headers=AS_TEAM)
        assert missing.status_code == 404
        refused = await http.post(
            "/v1/responses",
            json={"model": "local", "input": "x", "previous_response_id": made["id"]},
            headers=AS_TEAM,
        )
        assert refused.status_code == 400
        assert "responses.store: false" in refused.json()["error"]["message"]
    assert not (tmp_path / "responses.db").exists()


async def test_stored_content_never_reaches_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await _create(client, AS_TEAM, input="the launch code is 0000-SECRET")
    await client.get(f"/v1/responses/{made['id']}", headers=AS_TEAM)
    await client.get(f"/v1/responses/{made['id']}/input_items", headers=AS_TEAM)
    assert "SECRET" not in caplog.text
