"""A stream gives its deployment slot back however it ends, including a short answer whose
every chunk and `[DONE]` arrive in the upstream's first read (the relay after the first batch
is then never iterated, only closed). A slot that is not given back skews least-busy routing
for the life of the process. Real server on loopback, fake upstream, both lanes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.config import Config
from triage.engine.lanes import Lanes
from triage.fakeupstream import FakeUpstreamThread
from triage.state import MemoryStore

MSG = [{"role": "user", "content": "hello there"}]


def _config(fake: FakeUpstreamThread) -> Config:
    base = fake.url + "/v1"
    return config_from(
        {
            "model_list": [
                deployment("m", "hosted_vllm/fake-model", base, id="a"),
                deployment("m", "hosted_vllm/fake-model", base, id="b"),
            ],
            "router_settings": {"routing_strategy": "least-busy"},
        }
    )


def _stream(client: httpx.Client, url: str, **extra: Any) -> tuple[str | None, bytes]:
    body = {"model": "m", "messages": MSG, "stream": True, **extra}
    with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        return response.headers.get("x-triage-deployment"), response.read()


@pytest.mark.parametrize("lane", ["native", "litellm"])
def test_short_streams_give_their_slot_back(fake: FakeUpstreamThread, lane: str) -> None:
    fake.configure(completion_tokens=2)  # the whole stream fits one read
    config = _config(fake)
    store = MemoryStore()
    app = create_app(config, store=store, lanes=Lanes(config, force=lane))
    served = []
    with serve(app) as url, httpx.Client(timeout=20) as client:
        for _ in range(6):
            deployment_id, raw = _stream(client, url)
            assert raw.rstrip().endswith(b"data: [DONE]")
            served.append(deployment_id)
            # The slot goes back as the relay closes, which may be just after the client has
            # read `[DONE]` (the server thread is still unwinding): wait for it, bounded.
            assert _slots_free(store), (store.in_flight("a"), store.in_flight("b"))
        # Nothing is in flight between requests: every one sees both slots free and takes the
        # first deployment (least-busy breaks ties by config order).
        assert served == ["a"] * 6


def _slots_free(store: MemoryStore, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while (store.in_flight("a"), store.in_flight("b")) != (0, 0):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_stream_the_client_leaves_gives_its_slot_back(fake: FakeUpstreamThread) -> None:
    fake.configure(tokens_per_second=50, completion_tokens=200)  # long enough to leave
    config = _config(fake)
    store = MemoryStore()
    app = create_app(config, store=store)
    body = {"model": "m", "messages": MSG, "stream": True}
    with serve(app) as url, httpx.Client(timeout=20) as client:
        with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            next(response.iter_raw())  # the first bytes, then the client goes away
        deployment_id, _ = _stream(client, url)
        assert deployment_id == "a"  # the slot of the stream that was left is free again
    assert (store.in_flight("a"), store.in_flight("b")) == (0, 0)
