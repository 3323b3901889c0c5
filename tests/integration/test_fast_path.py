"""The hot routes' fast path (api/fastpath.py) answers exactly as the full FastAPI/Starlette
stack does: the same status, headers and body for good requests, every kind of refusal and
error (the Gate's, the parser's, the upstream's, an exception no layer expects), plain and
streamed, over ASGI and over a real server. Each case is sent to two apps built from one config,
one with the fast path and one with it turned off, and the answers are compared whole."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.api.fastpath import TriageApp
from triage.config import Config
from triage.engine.lanes import Lanes
from triage.fakeupstream import FakeUpstreamThread

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hello there"}]
GOOD = {"model": "local", "messages": MESSAGES}
CAP = 4096  # server.max_body_bytes of these apps
FAULTY = [{"kind": "status", "status": 429, "retry_after": 7, "times": 1000, "model": "fake-large"}]


def _config(fake: FakeUpstreamThread, **server: Any) -> Config:
    return config_from(
        {
            "model_list": [
                deployment("local", "hosted_vllm/fake-model", fake.url + "/v1"),
                deployment("broken", "hosted_vllm/fake-large", fake.url + "/v1"),
                deployment("emb", "hosted_vllm/fake-embedding", fake.url + "/v1"),
            ],
            "router_settings": {"num_retries": 0},
            "server": {"max_body_bytes": CAP, **server},
        }
    )


def _pair(config: Config, **options: Any) -> tuple[TriageApp, TriageApp]:
    fast, full = create_app(config, **options), create_app(config, **options)
    assert isinstance(fast, TriageApp) and isinstance(full, TriageApp)
    full.hot_paths = frozenset()
    return fast, full


def _answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], Any]:
    """Status, header list and body, without what differs between any two answers (the
    upstream's completion id and time)."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("date", "server")]
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return response.status_code, headers, _events(response)
    try:
        body = response.json()
    except ValueError:
        return response.status_code, headers, response.content
    return response.status_code, headers, _stable(body)


def _stable(value: Any) -> Any:
    """`value` without the ids and times the upstream or the gateway mint per answer."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


VOLATILE = frozenset({"id", "item_id", "created", "created_at", "completed_at"})


async def _too_big() -> AsyncIterator[bytes]:
    yield b'{"model": "local", "messages": ['
    for _ in range(CAP // 64):
        yield b'{"role": "user", "content": "' + b"x" * 40 + b'"},'
    yield b"]}"


# name: (method, path, body (dict: JSON), headers, status the full stack gives)
CASES: dict[str, tuple[str, str, Any, dict[str, str], int]] = {
    "good chat": ("POST", CHAT, GOOD, {}, 200),
    "good completion": ("POST", "/v1/completions", {"model": "local", "prompt": "hi"}, {}, 200),
    "chat fields on completions": ("POST", "/v1/completions", GOOD, {}, 400),
    "bad JSON": ("POST", CHAT, b'{"model": "local", ', {}, 400),
    "empty body": ("POST", CHAT, b"", {}, 400),
    "not an object": ("POST", CHAT, b"[1, 2]", {}, 400),
    "NaN": ("POST", CHAT, b'{"model": "local", "temperature": NaN}', {}, 400),
    "validation error": ("POST", CHAT, {"model": "local", "messages": "hi"}, {}, 400),
    "missing model": ("POST", CHAT, {"messages": MESSAGES}, {}, 400),
    "unknown model": ("POST", CHAT, {**GOOD, "model": "nope"}, {}, 404),
    "upstream 429": ("POST", CHAT, {**GOOD, "model": "broken"}, {}, 429),
    "text/plain": ("POST", CHAT, GOOD, {"content-type": "text/plain"}, 415),
    "form": ("POST", CHAT, b"a=b", {"content-type": "application/x-www-form-urlencoded"}, 415),
    "foreign Host": ("POST", CHAT, GOOD, {"host": "evil.example"}, 421),
    "cross-origin": ("POST", CHAT, GOOD, {"origin": "http://evil.example"}, 403),
    "cross-site fetch": ("POST", CHAT, GOOD, {"sec-fetch-site": "cross-site"}, 403),
    "declared over the cap": ("POST", CHAT, b"{}" + b" " * CAP, {}, 413),
    "chunked over the cap": ("POST", CHAT, _too_big, {}, 413),
    "GET": ("GET", CHAT, None, {}, 405),
    "HEAD": ("HEAD", "/v1/completions", None, {}, 405),
    "PUT": ("PUT", CHAT, GOOD, {}, 405),
    "trailing slash": ("POST", CHAT + "/", GOOD, {}, 404),
    "other case": ("POST", CHAT.upper(), GOOD, {}, 404),
    "query string": ("POST", CHAT + "?stream=true", GOOD, {}, 200),
}


async def _send(
    client: httpx.AsyncClient, case: str, cases: dict[str, Any] | None = None
) -> httpx.Response:
    method, path, body, headers, _ = (cases or CASES)[case]
    headers = {"x-request-id": "same-for-both", **headers}
    if isinstance(body, dict):
        return await client.request(method, path, json=body, headers=headers)
    content = body() if callable(body) else body
    return await client.request(method, path, content=content, headers=headers)


@pytest.fixture
async def clients(fake: FakeUpstreamThread) -> AsyncIterator[list[httpx.AsyncClient]]:
    fake.configure(faults=FAULTY)
    opened = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
        for app in _pair(_config(fake))
    ]
    yield opened
    for client in opened:
        await client.aclose()


@pytest.mark.parametrize("case", CASES)
async def test_the_fast_path_answers_as_the_full_stack(
    clients: list[httpx.AsyncClient], case: str
) -> None:
    fast, full = [_answer(await _send(client, case)) for client in clients]
    assert full[0] == CASES[case][4], full
    assert fast == full


# The other inference endpoints, each in its own wire format (Anthropic's on /v1/messages).
MESSAGE = {"model": "local", "max_tokens": 20, "messages": MESSAGES}
OTHERS: dict[str, tuple[str, str, Any, dict[str, str], int]] = {
    "embeddings": ("POST", "/v1/embeddings", {"model": "emb", "input": ["a", "b"]}, {}, 200),
    "embeddings, bad input": ("POST", "/v1/embeddings", {"model": "emb", "input": {}}, {}, 400),
    "embeddings, GET": ("GET", "/v1/embeddings", None, {}, 405),
    "responses": ("POST", "/v1/responses", {"model": "local", "input": "hi"}, {}, 200),
    "responses, stream": (
        "POST",
        "/v1/responses",
        {"model": "local", "input": "hi", "stream": True},
        {},
        200,
    ),
    "responses, bad JSON": ("POST", "/v1/responses", b"{", {}, 400),
    "responses, text/plain": ("POST", "/v1/responses", b"{}", {"content-type": "text/plain"}, 415),
    "messages": ("POST", "/v1/messages", MESSAGE, {}, 200),
    "messages, stream": ("POST", "/v1/messages", {**MESSAGE, "stream": True}, {}, 200),
    "messages, no max_tokens": ("POST", "/v1/messages", GOOD, {}, 400),
    "messages, unknown model": ("POST", "/v1/messages", {**MESSAGE, "model": "nope"}, {}, 404),
    "messages, upstream 429": ("POST", "/v1/messages", {**MESSAGE, "model": "broken"}, {}, 429),
    "messages, over the cap": ("POST", "/v1/messages", b"{}" + b" " * CAP, {}, 413),
    "messages, foreign Host": ("POST", "/v1/messages", MESSAGE, {"host": "evil.example"}, 421),
    "count tokens (full stack)": ("POST", "/v1/messages/count_tokens", MESSAGE, {}, 200),
}


@pytest.mark.parametrize("case", OTHERS)
async def test_the_other_inference_endpoints_answer_as_the_full_stack(
    clients: list[httpx.AsyncClient], case: str
) -> None:
    fast, full = [_answer(await _send(client, case, OTHERS)) for client in clients]
    assert full[0] == OTHERS[case][4], full
    assert fast == full


async def test_the_hot_routes_take_the_fast_path_and_other_routes_do_not(
    fake: FakeUpstreamThread,
) -> None:
    fast, full = _pair(_config(fake))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fast), base_url="http://localhost"
    ) as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.post(CHAT, json=GOOD)).status_code == 200
        # No middleware may be added once the app served, as with the full stack alone.
        with pytest.raises(RuntimeError):
            fast.add_middleware(TriageApp)
    assert fast.serves_fast
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=full), base_url="http://localhost"
    ) as client:
        assert (await client.post(CHAT, json=GOOD)).status_code == 200
    assert not full.serves_fast


async def test_a_root_path_leaves_routing_to_the_full_stack(fake: FakeUpstreamThread) -> None:
    """Under a root path the router matches the path without it: /v1 + /chat/completions
    is no route at all, and the fast path must not serve it as one."""
    answers = []
    for app in _pair(_config(fake)):
        transport = httpx.ASGITransport(app=app, root_path="/v1")
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            answers.append(_answer(await client.post(CHAT, json=GOOD)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404


class _Exploding:
    """An upstream transport that fails with an error no layer of ours expects."""

    async def send(self, *_: Any) -> Any:
        raise RuntimeError("the transport broke")

    async def open_stream(self, *_: Any) -> Any:
        raise RuntimeError("the transport broke")

    async def probe(self, *_: Any) -> bool:
        return True

    async def close(self) -> None:
        return None


class _ExplodingLanes(Lanes):
    def for_deployment(self, deployment: Any) -> Any:
        return _Exploding()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unexpected_error_is_a_logged_500_and_reaches_the_server_on_both(
    fake: FakeUpstreamThread, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    config = _config(fake)
    body = {**GOOD, "stream": stream}
    for app in _pair(config, lanes=_ExplodingLanes(config)):
        caplog.clear()
        quiet = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=quiet, base_url="http://localhost") as client:
            response = await client.post(CHAT, json=body)
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert "the transport broke" not in response.text
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == ["unhandled error: RuntimeError"]
        # As ServerErrorMiddleware does, the exception goes on to the server (which logs it).
        loud = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=loud, base_url="http://localhost") as client:
            with pytest.raises(RuntimeError, match="the transport broke"):
                await client.post(CHAT, json=body)


async def test_every_outcome_leaves_its_runtime_pin(fake: FakeUpstreamThread) -> None:
    """A pin left behind would keep a reloaded runtime open forever."""
    config = _config(fake)
    fake.configure(faults=FAULTY)
    app = create_app(config, config_source=lambda: config)
    broken = create_app(config, lanes=_ExplodingLanes(config))
    for target in (app, broken):
        transport = httpx.ASGITransport(app=target, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for case in CASES:
                await _send(client, case)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        assert (await client.post("/admin/reload")).status_code == 200
    assert app.state.triage.retirement.retired == 0


def _events(response: httpx.Response) -> list[Any]:
    """An event stream's `event:` names and `data:` payloads, in order, made `_stable`."""
    events: list[Any] = []
    for line in response.text.splitlines():
        name, _, data = line.partition(": ")
        if name == "event":
            events.append(data)
        elif name == "data":
            events.append(data if data == "[DONE]" else _stable(json.loads(data)))
    return events


STREAMS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "whole": ("local", []),
    "cut by an error event": ("local", [{"kind": "stream_error", "after_chunks": 2}]),
    "refused before the first byte": ("broken", FAULTY),
}


@pytest.mark.parametrize("stream", STREAMS)
def test_a_stream_over_a_real_server_is_the_same_on_both(
    fake: FakeUpstreamThread, stream: str
) -> None:
    model, faults = STREAMS[stream]
    answers = []
    for app in _pair(_config(fake)):
        fake.configure(faults=faults)
        with serve(app) as url:
            response = httpx.post(
                url + CHAT,
                json={**GOOD, "model": model, "stream": True},
                headers={"x-request-id": "same-for-both"},
            )
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("date",)]
        answers.append((response.status_code, headers, _events(response)))
    assert answers[0] == answers[1]
    assert answers[0][2] and answers[0][2][-1] == "[DONE]" or answers[0][0] == 429


def test_with_cors_configured_the_full_stack_serves_and_adds_its_headers(
    fake: FakeUpstreamThread,
) -> None:
    app = create_app(_config(fake, cors_origins=["http://app.example"]))
    assert isinstance(app, TriageApp)
    origin = {"origin": "http://app.example"}
    with serve(app) as url:
        response = httpx.post(url + CHAT, json=GOOD, headers=origin)
        preflight = httpx.options(
            url + CHAT,
            headers={**origin, "access-control-request-method": "POST"},
        )
        refused = httpx.post(url + CHAT, json=GOOD, headers={"origin": "http://evil.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-triage-route" in response.headers["access-control-expose-headers"]
    assert preflight.status_code == 200
    assert refused.status_code == 403
    assert not app.serves_fast
