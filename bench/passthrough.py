"""Baseline (b): the thinnest FastAPI gateway worth comparing Triage with.

FastAPI on uvicorn, one pooled aiohttp.ClientSession; POST /v1/chat/completions forwards the
body to the upstream and relays the response, or the stream's bytes as they arrive. Nothing
else: no parsing, no validation, no metrics. GET /health answers for start-up timing.

    python bench/passthrough.py --upstream http://127.0.0.1:9000/v1 --port 4100
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse


def create_app(upstream: str) -> FastAPI:
    url = upstream.rstrip("/") + "/chat/completions"
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=4.0)
        sessions.append(aiohttp.ClientSession(connector=connector, trust_env=False))
        yield
        await sessions[0].close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.body()
        response = await sessions[0].post(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        media_type = response.headers.get("Content-Type", "application/json")
        if not media_type.startswith("text/event-stream"):
            try:
                return Response(await response.read(), response.status, media_type=media_type)
            finally:
                response.release()
        return StreamingResponse(_relay(response), response.status, media_type=media_type)

    return app


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for data in response.content.iter_any():
            yield data
    finally:
        response.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="OpenAI base URL, including /v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4100)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
