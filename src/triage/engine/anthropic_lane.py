"""The native Anthropic lane: Messages requests go to Anthropic deployments as the client sent
them, so prompt caching (`cache_control`) and thinking signatures survive.

A lane decision, not a second pipeline: the Messages endpoint still goes through the service
(auth, classification, limits, budgets, the sensitive scan, the runner, the ledger) with the
request in chat form, and the call carries the client's own body as its `native` payload. For a
deployment whose provider is `anthropic`, this lane posts that body (allow-listed, the model
replaced by the deployment's) to `{api_base}/v1/messages` with `x-api-key` and
`anthropic-version`; the answer or the event stream goes back to the client untranslated, and
its chat form (engine/anthropic_wire.py) is what the pipeline meters. A call without a native
payload (a chat client, or any call to these deployments from another endpoint) goes to litellm,
which translates it as before. Failures map onto `triage.errors` as on the native lane.
"""

from __future__ import annotations

import aiohttp
from multidict import CIMultiDict

from triage import __version__
from triage.config.schema import Deployment, ServerSettings
from triage.engine.anthropic_wire import (
    DEFAULT_VERSION,
    HEADERS,
    StreamTally,
    chat_reply,
    messages_url,
    native_body,
)
from triage.engine.base import Batch, Call, Reply, Timeouts, Transport
from triage.engine.native import (
    NETWORK_ERRORS,
    _read_bounded,
    connect_timeout,
    reject_json_answer,
)
from triage.engine.native_errors import (
    ErrorInfo,
    network_error,
    raise_for_status,
    status_error,
)
from triage.engine.sessions import LoopSession
from triage.engine.sse import LineTooLong, SSEDecoder
from triage.errors import TriageError, UpstreamConnectionError, UpstreamError, UpstreamTooLarge
from triage.telemetry import attempt
from triage.wire import dumps, loads

ANTHROPIC_BASE = "https://api.anthropic.com"
_CALL_ERRORS = (*NETWORK_ERRORS, ValueError)


def is_native(call: Call) -> bool:
    return call.native is not None and call.native.format == "anthropic"


class AnthropicLane:
    """A `Transport` for Anthropic deployments: native for Messages calls, `other` (litellm)
    for everything else."""

    def __init__(self, other: Transport, server: ServerSettings | None = None) -> None:
        bounds = server or ServerSettings()
        self._other = other
        self._max_response = bounds.max_response_bytes
        self._max_line = bounds.max_sse_line_bytes
        self._session = LoopSession()

    async def send(self, deployment: Deployment, call: Call, timeouts: Timeouts) -> Reply:
        if not is_native(call):
            return await self._other.send(deployment, call, timeouts)
        response, secret = await self._post(deployment, call, timeouts)
        try:
            raw = await _read_bounded(response, self._max_response, deployment)
        except NETWORK_ERRORS as exc:
            raise network_error(exc, deployment, timeouts.connect) from None
        finally:
            response.close()
        message = _document(raw, deployment, secret, "answer")
        return Reply(body=chat_reply(message), native=message)

    async def open_stream(
        self, deployment: Deployment, call: Call, timeouts: Timeouts
    ) -> AnthropicStream:
        if not is_native(call):
            return await self._other.open_stream(deployment, call, timeouts)  # type: ignore[return-value]
        response, secret = await self._post(deployment, call, timeouts)
        if response.content_type == "application/json":
            await reject_json_answer(response, deployment, secret, _document)
        return AnthropicStream(response, deployment, secret, self._max_line)

    async def probe(self, deployment: Deployment, timeout: float) -> bool:
        raise NotImplementedError  # probes are lane-independent (engine/probe.py)

    async def close(self) -> None:
        await self._session.close()

    async def _post(
        self, deployment: Deployment, call: Call, timeouts: Timeouts
    ) -> tuple[aiohttp.ClientResponse, str | None]:
        params = deployment.litellm_params
        secret = params.api_key.get_secret_value() if params.api_key is not None else None
        url = messages_url(params.api_base or ANTHROPIC_BASE)
        with attempt(deployment.id, deployment.model_name, params.model) as trace_headers:
            headers = _headers(deployment, call, secret, trace_headers)
            try:
                response = await self._session.get().post(
                    url,
                    data=dumps(native_body(deployment, call)),
                    headers=headers,
                    timeout=connect_timeout(timeouts.connect),
                    allow_redirects=False,
                )
            except _CALL_ERRORS as exc:
                raise network_error(exc, deployment, timeouts.connect) from None
        await raise_for_status(response, deployment, secret)
        return response, secret


def _headers(
    deployment: Deployment, call: Call, secret: str | None, trace: dict[str, str]
) -> CIMultiDict[str]:
    assert call.native is not None
    headers: CIMultiDict[str] = CIMultiDict(
        {
            "User-Agent": f"triage/{__version__}",
            "Content-Type": "application/json",
            "anthropic-version": DEFAULT_VERSION,
        }
    )
    for name in HEADERS:  # the client's protocol version and betas (interleaved thinking...)
        value = call.native.headers.get(name)
        if value:
            headers[name] = value
    if secret:
        headers["x-api-key"] = secret
    extra = deployment.litellm_params.extra_headers
    if extra:
        headers.update(extra)  # explicit config wins
    headers.update(trace)
    return headers


def _document(
    raw: bytes, deployment: Deployment, secret: str | None, what: str
) -> dict[str, object]:
    """A JSON object from the deployment; an Anthropic error document raises its error."""
    try:
        document = loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise UpstreamError(f"deployment `{deployment.id}` sent a malformed {what}")
    if document.get("type") == "error" or "error" in document:
        raise _event_error(deployment, document, secret)
    return document


def _event_error(
    deployment: Deployment, document: dict[str, object], secret: str | None
) -> TriageError:
    """An Anthropic `{"type": "error", "error": {...}}` document or event."""
    info = ErrorInfo.parse(document)
    status = {"overloaded_error": 529, "api_error": 500}.get(info.type, info.inferred_status())
    if info.type == "invalid_request_error":
        status = 400
    return status_error(deployment, status, info, {}, secret)


class AnthropicStream:
    """An upstream Messages event stream as batches: each read's events as their own SSE
    frames (`Batch.native`, relayed as they are) and one chat chunk for accounting. `aclose`
    aborts the connection unless `message_stop` arrived."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        deployment: Deployment,
        secret: str | None,
        max_line: int,
    ) -> None:
        self._response = response
        self._deployment = deployment
        self._secret = secret
        self._decoder = SSEDecoder(max_line)
        self._tally = StreamTally()
        self._eof = False

    def __aiter__(self) -> AnthropicStream:
        return self

    async def __anext__(self) -> Batch:
        while True:
            if self._tally.finished:
                raise StopAsyncIteration
            if self._eof:
                raise self._cut()
            events = [self._event(data) for data in await self._read()]
            if events:
                frames = [_frame(event, data) for event, data in events]
                chunk = self._tally.chunk([event for event, _ in events])
                return Batch([chunk], last=self._tally.finished, native=frames)

    def _event(self, data: bytes) -> tuple[dict[str, object], bytes]:
        return _document(data, self._deployment, self._secret, "stream event"), data

    def _cut(self) -> UpstreamConnectionError:
        return UpstreamConnectionError(
            f"deployment `{self._deployment.id}`: stream cut before it finished"
        )

    async def _read(self) -> list[bytes]:
        try:
            data = await self._response.content.readany()
        except NETWORK_ERRORS:
            self._eof = True
            raise self._cut() from None
        try:
            if data:
                return self._decoder.feed(data)
            self._eof = True
            return self._decoder.flush()
        except LineTooLong as exc:
            self._eof = True
            raise UpstreamTooLarge(
                f"deployment `{self._deployment.id}` sent {exc} (server.max_sse_line_bytes)"
            ) from None

    async def aclose(self) -> None:
        if self._tally.finished or self._eof:
            self._response.release()
        else:
            self._response.close()


def _frame(event: dict[str, object], data: bytes) -> bytes:
    kind = event.get("type")
    name = kind.encode() if isinstance(kind, str) else b"message"
    return b"event: " + name + b"\ndata: " + data + b"\n\n"
