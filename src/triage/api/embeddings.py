"""POST /v1/embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from triage.api.deps import meta, parse, state
from triage.api.render import FastJSONResponse
from triage.protocol import EmbeddingRequest
from triage.service import Answer

router = APIRouter()


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    body = await parse(request, EmbeddingRequest)
    answer = await state(request).service.handle("embedding", body, meta(request))
    assert isinstance(answer, Answer)  # embeddings never stream
    return FastJSONResponse(answer.body, headers=answer.headers)
