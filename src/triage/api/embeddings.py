"""POST /v1/embeddings (a plain Starlette route, like chat.py's)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triage.api.deps import meta, parse, state
from triage.api.render import FastJSONResponse
from triage.embedding_encoding import with_encoding
from triage.protocol import EmbeddingRequest
from triage.service import Answer


async def embeddings(request: Request) -> Response:
    body = await parse(request, EmbeddingRequest)
    answer = await state(request).service.handle("embedding", body, meta(request))
    assert isinstance(answer, Answer)  # embeddings never stream
    with_encoding(answer.body, body.encoding_format)  # whatever the backend answered
    return FastJSONResponse(answer.body, headers=answer.headers)


routes: list[BaseRoute] = [Route("/v1/embeddings", embeddings, methods=["POST"])]
