"""POST /v1/chat/completions and /v1/completions: plain JSON or SSE.

Like every OpenAI endpoint these are plain Starlette routes: they read their own body (so a bad
one is an OpenAI-shaped 400) and need none of FastAPI's dependency solving, which costs about
as much again as the routing itself (~35 µs a request). api/openapi.py documents them.
A client that leaves, mid-upload or while the upstream works, ends the request (disconnect.py).
The requested model name goes through `router_settings.model_group_alias` first.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triage.api.deps import meta, parse, state
from triage.api.disconnect import gone, unless_gone
from triage.api.render import FastJSONResponse
from triage.api.sse import EventStream, frames
from triage.config.group_alias import resolve_model
from triage.engine.base import CallKind
from triage.protocol import ChatCompletionRequest, CompletionRequest
from triage.protocol import Request as Body
from triage.service import StreamAnswer


async def _serve(request: Request, kind: CallKind, shape: type[Body]) -> Response:
    try:
        body = await parse(request, shape)
    except ClientDisconnect:  # an abandoned upload: nothing to answer, nothing to log
        return gone()
    app = state(request)
    model = resolve_model(app.config, body.model)
    if model != body.model:
        body = body.model_copy(update={"model": model})
    answer = await unless_gone(request, app.service.handle(kind, body, meta(request)))
    if answer is None:
        return gone()
    if isinstance(answer, StreamAnswer):
        headers = {**answer.headers, "cache-control": "no-cache"}
        return EventStream(frames(answer.chunks), headers, answer.chunks)
    return FastJSONResponse(answer.body, headers=answer.headers)


async def chat_completions(request: Request) -> Response:
    return await _serve(request, "chat", ChatCompletionRequest)


async def completions(request: Request) -> Response:
    return await _serve(request, "completion", CompletionRequest)


routes: list[BaseRoute] = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
