"""POST /v1/chat/completions and /v1/completions: plain JSON or SSE."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from triage.api.deps import meta, parse, state
from triage.api.render import FastJSONResponse
from triage.api.sse import EventStream, frames
from triage.engine.base import CallKind
from triage.protocol import ChatCompletionRequest, CompletionRequest
from triage.protocol import Request as Body
from triage.service import StreamAnswer

router = APIRouter()


async def _serve(request: Request, kind: CallKind, body: Body) -> Response:
    answer = await state(request).service.handle(kind, body, meta(request))
    if isinstance(answer, StreamAnswer):
        return EventStream(frames(answer.chunks), {**answer.headers, "cache-control": "no-cache"})
    return FastJSONResponse(answer.body, headers=answer.headers)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await _serve(request, "chat", await parse(request, ChatCompletionRequest))


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await _serve(request, "completion", await parse(request, CompletionRequest))
