"""POST /v1/embeddings (a plain Starlette route, like chat.py's, and like it ended by a client
that leaves)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triage.api.deps import meta, parse, state
from triage.api.disconnect import gone, unless_gone
from triage.api.render import FastJSONResponse
from triage.embedding_encoding import with_encoding
from triage.protocol import EmbeddingRequest
from triage.service import Answer


async def embeddings(request: Request) -> Response:
    try:
        body = await parse(request, EmbeddingRequest)
    except ClientDisconnect:
        return gone()
    answer = await unless_gone(
        request, state(request).service.handle("embedding", body, meta(request))
    )
    if answer is None:
        return gone()
    assert isinstance(answer, Answer)  # embeddings never stream
    with_encoding(answer.body, body.encoding_format)  # whatever the backend answered
    return FastJSONResponse(answer.body, headers=answer.headers)


routes: list[BaseRoute] = [Route("/v1/embeddings", embeddings, methods=["POST"])]
