"""The native lane: a `Transport` for deployments that already speak the OpenAI protocol.

vLLM, llama.cpp, Ollama `/v1`, TGI `/v1`, OpenAI, Groq, Together and friends need no
translation, so this lane forwards the allow-listed body itself over one pooled
`aiohttp.ClientSession` instead of going through litellm (about 5 ms per request and 1 ms per
stream chunk). Like every transport it makes exactly one call and maps its failures onto
`triage.errors` (native_errors.py); retries, fallbacks and deadlines belong to the runner.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import aiohttp
from multidict import CIMultiDict

from triage import __version__, telemetry
from triage.config.schema import Deployment, ServerSettings
from triage.engine.base import Batch, Call, CallKind, Chunk, Reply, Timeouts
from triage.engine.http1 import Answer, Http1Pool, header_lines, plain_route
from triage.engine.native_errors import (
    inband_error,
    network_error,
    raise_for_status,
    read_error_body,
)
from triage.engine.payload import upstream_body
from triage.engine.sessions import KEEPALIVE_SECONDS, POOL_LIMIT, LoopSession
from triage.engine.sse import DONE, ERROR_MEMBER, LineTooLong, SSEDecoder, plain_chunks
from triage.errors import (
    TriageError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTooLarge,
)
from triage.identity import ByIdentity
from triage.wire import dumps, loads

# Where hosted providers listen when a deployment names no api_base (LiteLLM's defaults).
DEFAULT_API_BASES = {
    "openai": "https://api.openai.com/v1",
    "text-completion-openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
}
PATHS: dict[CallKind, str] = {
    "chat": "/chat/completions",
    "completion": "/completions",
    "embedding": "/embeddings",
}
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
_CALL_ERRORS = (*NETWORK_ERRORS, ValueError)  # ValueError: aiohttp's invalid URL / header


@dataclass(frozen=True)
class Target:
    """Where one call goes and with which headers; `secret` is kept only to scrub messages.
    `plain`: for an `http://` upstream, its host, port and request head (http1.py)."""

    url: str
    headers: CIMultiDict[str]
    secret: str | None
    plain: tuple[str, int, bytes] | None = None
    model: str = ""  # the model name as the deployment knows it (no provider prefix)


def target(deployment: Deployment, kind: CallKind) -> Target:
    params = deployment.litellm_params
    base = params.api_base or DEFAULT_API_BASES.get(params.provider)
    if base is None:
        raise UpstreamRejected(
            f"deployment `{deployment.id}` has no api_base (provider `{params.provider}`)"
        )
    headers: CIMultiDict[str] = CIMultiDict(
        {"User-Agent": f"triage/{__version__}", "Content-Type": "application/json"}
    )
    secret = params.api_key.get_secret_value() if params.api_key is not None else None
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    if params.organization:
        headers["OpenAI-Organization"] = params.organization
    if params.extra_headers:
        headers.update(params.extra_headers)  # explicit config wins, case-insensitively
    url = base + PATHS[kind]
    return Target(url, headers, secret or None, plain_route(url, headers), params.model_name)


class NativeLane:
    """A `Transport` over one pooled aiohttp session, created in the loop that first uses it.

    Nothing an upstream sends is read without a bound: an answer stops at
    `server.max_response_bytes`, a stream's line or event at `server.max_sse_line_bytes`.
    """

    def __init__(self, server: ServerSettings | None = None) -> None:
        bounds = server or ServerSettings()
        self._max_response = bounds.max_response_bytes
        self._max_line = bounds.max_sse_line_bytes
        self._session = LoopSession()
        self._pool: Http1Pool | None = None  # plain-http upstreams (http1.py)
        # Each deployment's URL and headers, worked out once per call kind.
        self._targets = {kind: ByIdentity(partial(target, kind=kind)) for kind in PATHS}

    def _plain_pool(self) -> Http1Pool:
        pool = self._pool
        # Like the session, a pool is bound to its loop; one left on a finished loop has no
        # live connections to close.
        if pool is None or pool.loop is not asyncio.get_running_loop():
            self._pool = pool = Http1Pool(POOL_LIMIT, KEEPALIVE_SECONDS)
        return pool

    async def send(self, deployment: Deployment, call: Call, timeouts: Timeouts) -> Reply:
        response, where = await self._post(deployment, call, timeouts)
        try:
            raw = await _read_bounded(response, self._max_response, deployment)
        except NETWORK_ERRORS as exc:
            raise network_error(exc, deployment, timeouts.connect) from None
        finally:
            response.close()  # a no-op once the body is read; aborts a half-read one
        return Reply(body=_decode_reply(raw, deployment, where.secret))

    async def open_stream(
        self, deployment: Deployment, call: Call, timeouts: Timeouts
    ) -> NativeStream:
        response, where = await self._post(deployment, call, timeouts)
        if response.content_type == "application/json":
            # A server that answers a stream request with one JSON document is reporting an
            # error in-band (or ignoring `stream`): either way there is nothing to relay.
            await reject_json_answer(response, deployment, where.secret)
        return NativeStream(response, deployment, where.secret, self._max_line)

    async def probe(self, deployment: Deployment, timeout: float) -> bool:
        raise NotImplementedError  # probes are lane-independent (engine/probe.py)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and pool.loop is asyncio.get_running_loop():
            pool.close()
        await self._session.close()

    async def _post(
        self, deployment: Deployment, call: Call, timeouts: Timeouts
    ) -> tuple[Answer, Target]:
        """The call under its trace span (telemetry), carrying its W3C traceparent."""
        if telemetry.ACTIVE.get() is None:  # no tracing: no span to open around the call
            return await self._post_once(deployment, call, timeouts, {})
        params = deployment.litellm_params
        with telemetry.attempt(deployment.id, deployment.model_name, params.model) as trace_headers:
            return await self._post_once(deployment, call, timeouts, trace_headers)

    async def _post_once(
        self,
        deployment: Deployment,
        call: Call,
        timeouts: Timeouts,
        trace_headers: dict[str, str],
    ) -> tuple[Answer, Target]:
        """Start the call; return the response once its status is known to be a success."""
        where = self._targets[call.kind].of(deployment)
        body = upstream_body(deployment, call)
        body["model"] = where.model
        data = dumps(body)
        response: Answer
        try:
            extra = header_lines(trace_headers) if trace_headers else b""
            if where.plain is not None and extra is not None:
                host, port, head = where.plain
                pool = self._plain_pool()
                head = head + extra if extra else head
                response = await pool.post(host, port, head, data, timeouts.connect)
            else:
                response = await self._session.get().post(
                    where.url,
                    data=data,
                    headers=_with(where.headers, trace_headers),
                    # The runner bounds the whole attempt and the first token; only the connect
                    # phase needs its own, shorter limit.
                    timeout=connect_timeout(timeouts.connect),
                    allow_redirects=False,
                )
        except _CALL_ERRORS as exc:
            raise network_error(exc, deployment, timeouts.connect) from None
        if not 200 <= response.status < 300:  # checked here: a coroutine less per success
            await raise_for_status(response, deployment, where.secret)
        return response, where


def _with(headers: CIMultiDict[str], extra: dict[str, str]) -> CIMultiDict[str]:
    if not extra:
        return headers
    merged = headers.copy()
    merged.update(extra)
    return merged


async def _read_bounded(response: Answer, limit: int, deployment: Deployment) -> bytes:
    """The whole body, refused as soon as it (or its declared length) passes `limit`; the
    caller closes the response, which drops the connection instead of draining the rest."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise _too_large(deployment, limit)
    parts: list[bytes] = []
    size = 0
    while part := await response.content.readany():
        size += len(part)
        if size > limit:
            raise _too_large(deployment, limit)
        parts.append(part)
    return b"".join(parts)


def _too_large(deployment: Deployment, limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge(
        f"deployment `{deployment.id}` sent an answer over {limit} bytes "
        "(server.max_response_bytes)"
    )


def _decode(raw: bytes, deployment: Deployment, secret: str | None, what: str) -> dict[str, Any]:
    try:
        document = loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise UpstreamError(f"deployment `{deployment.id}` sent a malformed {what}")
    if document.get("error") is not None or document.get("object") == "error":
        raise inband_error(deployment, document, secret)
    return document


def _decode_reply(raw: bytes, deployment: Deployment, secret: str | None) -> dict[str, Any]:
    return _decode(raw, deployment, secret, "answer")


async def reject_json_answer(
    response: Answer,
    deployment: Deployment,
    secret: str | None,
    decode: Callable[[bytes, Deployment, str | None, str], object] = _decode,
) -> NoReturn:
    """A stream request answered with one JSON document: its in-band error (`decode` raises
    it, in the lane's own format), else an error saying nothing was streamed."""
    try:
        raw = await read_error_body(response)
    finally:
        response.close()
    decode(raw, deployment, secret, "answer")
    raise UpstreamError(f"deployment `{deployment.id}` did not stream its answer")


class NativeStream:
    """An upstream SSE stream as batches of OpenAI chunk dicts (an `UpstreamStream`).

    Each batch holds the chunks one read from the socket completed, so a fast upstream's burst
    is relayed as one write rather than one per chunk. It is its own iterator, so the runner can
    take the first batch and relay the rest from the same position. `aclose` aborts the
    connection unless `[DONE]` arrived, so a client that goes away stops generation upstream
    instead of leaving it to run to the end.
    """

    def __init__(
        self,
        response: Answer,
        deployment: Deployment,
        secret: str | None,
        max_line: int = 1024 * 1024,
    ) -> None:
        self._response = response
        self._deployment = deployment
        self._secret = secret
        self._decoder = SSEDecoder(max_line)
        self._finished = False
        self._eof = False
        self._failure: TriageError | None = None

    def __aiter__(self) -> NativeStream:
        return self

    async def __anext__(self) -> Batch:
        while True:
            if self._finished:
                raise StopAsyncIteration
            if self._eof:
                raise UpstreamConnectionError(
                    f"deployment `{self._deployment.id}`: stream cut before it finished"
                )
            if self._failure is not None:
                raise self._failure
            batch = self._batch(await self._read())
            if batch is not None:
                return batch

    def _batch(self, events: list[bytes]) -> Batch | None:
        plain = plain_chunks(events)
        if plain:  # the usual read: chunk objects only, perhaps ended by [DONE]
            self._finished = len(plain) < len(events)
            return Batch([None] * len(plain), plain, last=self._finished, decode=self._decode)
        chunks: list[Chunk | None] = []
        raw: list[bytes] = []
        for data in events:
            if data.startswith(DONE):
                self._finished = True
                break
            if ERROR_MEMBER in data or data[:1] != b"{":
                # Could be an in-band error or malformed: decoded here, so that it is raised
                # after the chunks before it, and never relayed as if it were a chunk.
                try:
                    chunks.append(self._decode(data))
                except TriageError as exc:
                    if not chunks:
                        raise
                    self._failure = exc  # the chunks before it still reach the client
                    break
            else:
                chunks.append(None)  # decoded only if the relay needs to look inside
            raw.append(data)
        return Batch(chunks, raw, last=self._finished, decode=self._decode) if chunks else None

    def _decode(self, data: bytes) -> Chunk:
        return _decode(data, self._deployment, self._secret, "stream chunk")

    async def _read(self) -> list[bytes]:
        """The events the next read completes (at end of input, whatever was left)."""
        try:
            data = await self._response.content.readany()
        except NETWORK_ERRORS:
            self._eof = True
            raise UpstreamConnectionError(
                f"deployment `{self._deployment.id}`: stream cut before it finished"
            ) from None
        try:
            if data:
                return self._decoder.feed(data)
            self._eof = True
            return self._decoder.flush()
        except LineTooLong as exc:
            # Kept, so that asking again raises it again; aclose then drops the connection.
            self._failure = UpstreamTooLarge(
                f"deployment `{self._deployment.id}` sent {exc} (server.max_sse_line_bytes)"
            )
            raise self._failure from None

    async def aclose(self) -> None:
        if self._finished or self._eof:
            self._response.release()
        else:
            self._response.close()


@functools.lru_cache(maxsize=64)
def connect_timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    """One (frozen) ClientTimeout per connect limit: building it per request was ~1% of the
    server's CPU under load (py-spy, issue 16)."""
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds)
