"""Anthropic's Messages API: `POST /v1/messages` (JSON and SSE), `POST /v1/messages/count_tokens`,
and `HEAD /` / `GET /` (Claude Code checks the base URL answers before it starts).

A Messages request is translated to a chat request (protocols/anthropic.py) and handed to the
same pipeline as `/v1/chat/completions`; its answer or stream is translated back. The client's
own body rides along (`Native`): a deployment whose provider is Anthropic receives it as it was
(engine/anthropic_lane.py), and its answer or events come back untranslated. Streams send
`ping` events while they wait (messages_sse.py). The requested
model name goes through `router_settings.model_group_alias` first (Claude Code sends Claude
model names). The client key arrives as `x-api-key` (the anthropic SDK, `ANTHROPIC_API_KEY`) or
as `Authorization: Bearer` (`ANTHROPIC_AUTH_TOKEN`); `anthropic-version`, `anthropic-beta` and
`?beta=true` are accepted and change nothing. Errors on these paths are rendered in Anthropic's
shape (api/errors.py picks the shape by path).

A conversation sent to an alias sticks to the model group that answered its first turn, keyed by
`metadata.user_id` (Claude Code sends one per session), so an agent's tool loop is not split
between models; failover still moves it when that group fails.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, replace

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triage.api import messages_sse as sse
from triage.api.deps import AppState, meta, parse, state
from triage.api.disconnect import gone, unless_gone
from triage.api.errors import validation_error
from triage.api.render import FastJSONResponse
from triage.api.sse import EventStream
from triage.api.sticky import Pin, Pins, sticky_routes
from triage.api.token_count import TokenCounter
from triage.config.auth import KeySpec
from triage.config.group_alias import resolve_model
from triage.config.schema import Config
from triage.engine.anthropic_wire import HEADERS
from triage.engine.base import Native
from triage.errors import NotFound
from triage.policy import is_alias
from triage.protocol import ChatCompletionRequest
from triage.protocols.anthropic import (
    CountTokensRequest,
    MessagesRequest,
    conversation,
    to_chat,
)
from triage.protocols.anthropic_output import Draft, from_chat
from triage.protocols.anthropic_stream import MessageEvents
from triage.service import Answer, Meta, StreamAnswer

STICKY = "sticky_routes"  # shared with the Responses API (api/responses.py)
COUNTER = "token_counter"


def _sticky(app: AppState) -> Pins:
    routes: Pins | None = app.extras.get(STICKY)
    if routes is None:
        routes = app.extras[STICKY] = sticky_routes(app.config, app.shared.metrics)
    return routes


def _meta(request: Request) -> Meta:
    """The request's meta, with an `x-api-key` as the bearer token when there is no
    Authorization header."""
    found = meta(request)
    api_key = request.headers.get("x-api-key")
    if found.authorization is None and api_key:
        return replace(found, authorization=f"Bearer {api_key}")
    return found


async def create_message(request: Request) -> Response:
    try:
        body = await parse(request, MessagesRequest)
    except ClientDisconnect:
        return gone()
    app = state(request)
    request_meta = _meta(request)
    model = resolve_model(app.config, body.model)
    key = app.service.guard.authenticate(request_meta.authorization)
    keys = _conversation_keys(body, key, model)
    pin = Pin.decode(await _sticky(app).find(keys) if keys else None)
    stuck = pin is not None and _usable(app.config, model, key, pin.group)
    chat = _chat_request(body, pin.group if pin is not None and stuck else model)
    if pin is not None and stuck:  # and to the deployment that served it, while it is healthy
        request_meta = replace(request_meta, prefer=pin.deployment)
    turn = _Turn(app, body, model, keys, stuck, request_meta.request_id)
    work = app.service.handle("chat", chat, request_meta, _native(body, request))
    if not body.stream:
        answer = await unless_gone(request, work)
        return gone() if answer is None else await turn.respond(answer)
    task = asyncio.create_task(work)
    waited = await unless_gone(request, asyncio.wait({task}, timeout=turn.every))
    if waited is None:  # the client went away
        task.cancel()
        await asyncio.wait({task})
        return gone()
    if task.done():
        return await turn.respond(task.result())
    headers = {"request-id": turn.request_id, "cache-control": "no-cache"}
    return EventStream(sse.late(task, turn.every, turn.request_id, turn.settled_frames), headers)


@dataclass
class _Turn:
    """One Messages request, from its answer on."""

    app: AppState
    body: MessagesRequest
    model: str
    keys: list[str]
    stuck: bool
    request_id: str

    @property
    def every(self) -> float:
        return self.app.config.server.sse_ping_interval

    async def respond(self, answer: Answer | StreamAnswer) -> Response:
        headers = await self.settle(answer)
        if isinstance(answer, StreamAnswer):
            frames = await self.frames(answer)
            return EventStream(frames, {**headers, "cache-control": "no-cache"}, answer.chunks)
        if answer.native is not None:  # an Anthropic deployment's own answer, untranslated
            return FastJSONResponse(answer.native, headers=headers)
        return FastJSONResponse(from_chat(Draft(self.body), answer.body), headers=headers)

    async def settle(self, answer: Answer | StreamAnswer) -> dict[str, str]:
        """Remember where the conversation went; the response's headers."""
        keys, config = self.keys, self.app.config
        route = answer.headers.get("x-triage-route")
        if keys and route is not None and _usable(config, self.model, None, route):
            served = Pin(route, answer.headers.get("x-triage-deployment"))
            await _sticky(self.app).remember(keys, served.encode())
        headers = {**answer.headers, "request-id": self.request_id}
        if keys:
            headers["x-triage-sticky"] = "hit" if self.stuck else "new"
        return headers

    async def settled_frames(self, answer: StreamAnswer) -> sse.Frames:
        """For a stream that started before its answer: its headers are gone already."""
        await self.settle(answer)
        return await self.frames(answer)

    async def frames(self, answer: StreamAnswer) -> sse.Frames:
        events = MessageEvents(Draft(self.body), self.request_id)
        relay = sse.native if answer.native else sse.translated
        return relay(answer, events, self.every)


def _native(body: MessagesRequest, request: Request) -> Native:
    """The client's own body, for deployments that speak Messages natively (engine/
    anthropic_lane.py): its prompt caching and thinking signatures survive there."""
    headers = {name: request.headers[name] for name in HEADERS if name in request.headers}
    return Native("anthropic", body.model_dump(exclude_unset=True), headers)


def _conversation_keys(body: MessagesRequest, key: KeySpec | None, model: str) -> list[str]:
    """The conversation's sticky key: its `metadata.user_id`, scoped to the caller's key and
    the alias it asked for (Claude Code's background requests map to another name)."""
    if body.user_id is None:
        return []
    owner = key.id if key is not None else ""
    raw = f"{owner}\0messages\0{model}\0{body.user_id}"
    return [hashlib.sha256(raw.encode()).hexdigest()]


def _usable(config: Config, model: str, key: KeySpec | None, group: str | None) -> bool:
    """Only turns for an alias stick, to a group that still exists and the key may name."""
    if group is None or not is_alias(config, model) or group not in config.groups:
        return False
    return key is None or not key.models or group in key.models


def _chat_request(body: MessagesRequest, model: str) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(to_chat(body, model))
    except ValidationError as exc:
        raise validation_error(exc) from None


async def count_tokens(request: Request) -> Response:
    try:
        body = await parse(request, CountTokensRequest)
    except ClientDisconnect:
        return gone()
    app = state(request)
    service = app.service
    key = service.guard.authenticate(_meta(request).authorization)
    model = resolve_model(app.config, body.model)
    groups = app.config.groups
    if model not in groups and not is_alias(app.config, model):
        raise NotFound(f"The model `{body.model}` does not exist", param="model")
    service.guard.authorize(key, model, None)
    chat = conversation(body, model)
    upstream = groups[model][0].litellm_params.model if model in groups else None
    counter: TokenCounter = app.extras.setdefault(COUNTER, TokenCounter())
    # The first count loads an encoding (~2 s of CPU): never on the event loop.
    tokens, how = await asyncio.to_thread(counter.count, chat, upstream)
    return FastJSONResponse({"input_tokens": tokens}, headers={"x-triage-token-count": how})


async def root(request: Request) -> Response:
    return FastJSONResponse({"status": "ok"})


routes: list[BaseRoute] = [
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/", root, methods=["GET", "HEAD"]),
]
