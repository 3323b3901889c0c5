"""How the native lane turns upstream failures into `triage.errors`.

Three sources of failure: an HTTP status with an OpenAI-style error body, an `{"error": ...}`
event inside a stream (or a 200 body), and the network itself. Upstream messages are never
relayed verbatim: errors name the deployment, and only a client-caused 400 carries a short,
sanitised first line of what the upstream said, because that is what the client needs to fix.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from triage.config.schema import Deployment
from triage.engine.http1 import Answer, ConnectFailed
from triage.errors import (
    BadRequest,
    ContentPolicyViolation,
    ContextWindowExceeded,
    RateLimited,
    TriageError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

MAX_ERROR_BODY = 64 * 1024  # an error body is small; a huge one is not worth reading
MAX_MESSAGE = 200
_CONTEXT = re.compile(
    r"context.length|maximum context|context window|context size|too many tokens"
    r"|prompt is too long",
    re.IGNORECASE,
)
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})
_RATE_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "too_many_requests"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class ErrorInfo:
    """The parts of an OpenAI-style error document that decide the mapping."""

    code: str = ""
    type: str = ""
    message: str = ""
    status: int | None = None  # some servers (vLLM, llama.cpp) put the HTTP status in `code`

    @classmethod
    def parse(cls, document: Any) -> ErrorInfo:
        if not isinstance(document, Mapping):
            return cls()
        inner = document.get("error", document)
        if isinstance(inner, str):  # Ollama: {"error": "message"}
            return cls(message=inner)
        if not isinstance(inner, Mapping):
            return cls()
        code, kind = inner.get("code"), inner.get("type")
        message = inner.get("message", document.get("message", ""))
        return cls(
            code=str(code).lower() if isinstance(code, str) else "",
            type=str(kind).lower() if isinstance(kind, str) else "",
            message=message if isinstance(message, str) else "",
            status=code if isinstance(code, int) and 400 <= code <= 599 else None,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ErrorInfo:
        try:
            return cls.parse(json.loads(raw))
        except ValueError:
            return cls()

    def is_context(self) -> bool:
        if "context_length" in self.code or "exceed_context" in self.type:
            return True
        return bool(_CONTEXT.search(self.message))

    def is_policy(self) -> bool:
        return bool({self.code, self.type} & _POLICY_CODES) or "content_filter" in self.message

    def inferred_status(self) -> int:
        """The status an in-band error stands for, when no HTTP status came with it."""
        if self.status is not None:
            return self.status
        if self.code in _RATE_CODES or self.type in _RATE_CODES:
            return 429
        if self.is_context() or self.is_policy():
            return 400
        return 500


def sanitize(message: str, secret: str | None) -> str:
    """One short line of an upstream message: no tracebacks, no control characters, no key."""
    text = message.split("Traceback (most recent call last)", 1)[0].strip()
    line = _CONTROL.sub(" ", text.splitlines()[0] if text else "").strip()
    if secret:
        line = line.replace(secret, "***")
    return line[:MAX_MESSAGE] or "no details given"


def retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds or an HTTP date) or OpenAI's retry-after-ms."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now())
        except (TypeError, ValueError, IndexError):
            pass
    millis = headers.get("retry-after-ms")
    try:
        return max(0.0, float(millis) / 1000) if millis else None
    except ValueError:
        return None


def _client_error(where: str, info: ErrorInfo, secret: str | None) -> TriageError:
    if info.is_context():
        return ContextWindowExceeded(f"the prompt is too long for {where}")
    if info.is_policy():
        return ContentPolicyViolation(f"{where} refused the request under its content policy")
    return BadRequest(f"{where} rejected the request: {sanitize(info.message, secret)}")


def _rejected(status: int, where: str) -> TriageError:
    return UpstreamRejected(f"{where} rejected the call (HTTP {status}): check its config")


# Statuses with a fixed meaning; everything else is decided by its class (4xx, 5xx).
_BY_STATUS: dict[int, Callable[[int, str], TriageError]] = {
    401: _rejected,
    403: _rejected,
    404: _rejected,
    408: lambda s, w: UpstreamTimeout(f"{w} timed out (HTTP 408)"),
    503: lambda s, w: UpstreamUnavailable(f"{w} is unavailable (HTTP 503)"),
    504: lambda s, w: UpstreamTimeout(f"{w} timed out (HTTP 504)"),
    529: lambda s, w: UpstreamUnavailable(f"{w} is overloaded (HTTP 529)"),
}
_CLIENT_STATUSES = frozenset({400, 413, 422})


def status_error(
    deployment: Deployment,
    status: int,
    info: ErrorInfo,
    headers: Mapping[str, str],
    secret: str | None = None,
) -> TriageError:
    """The error for an upstream answer with `status` (or an in-band error standing for it)."""
    where = f"deployment `{deployment.id}`"
    if status == 429:
        return RateLimited(f"{where} is rate limited", retry_after=retry_after(headers))
    if status in _CLIENT_STATUSES or _is_validation_500(status, info):
        return _client_error(where, info, secret)
    fixed = _BY_STATUS.get(status)
    if fixed is not None:
        return fixed(status, where)
    if status < 400:
        return _rejected(status, where)  # a redirect: the api_base is wrong
    return UpstreamError(f"{where} failed (HTTP {status})")


def _is_validation_500(status: int, info: ErrorInfo) -> bool:
    """llama-cpp-python answers a request it cannot validate with a 500; retrying or falling
    back cannot help, so it is the client's 400."""
    message = info.message.lower()
    return status == 500 and (message.startswith("validation error") or "'loc': ('body'" in message)


def inband_error(deployment: Deployment, document: Any, secret: str | None) -> TriageError:
    """An `{"error": ...}` document inside a 200 answer or a stream."""
    info = ErrorInfo.parse(document)
    status = info.inferred_status()
    if status >= 500:
        return UpstreamError(f"deployment `{deployment.id}` reported an error")
    return status_error(deployment, status, info, {}, secret)


def network_error(exc: BaseException, deployment: Deployment, connect: float) -> TriageError:
    """aiohttp's and the OS's exceptions -> ours. Their text (host, port, errno) is dropped."""
    where = f"deployment `{deployment.id}`"
    # A connect timeout means the host is unreachable, like a refused connection: it says
    # nothing about how long generation takes, so it is a connection error, not a timeout.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamConnectionError(f"could not connect to {where} within {connect:g}s")
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectFailed):
        return UpstreamConnectionError(f"could not connect to {where}")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{where} timed out")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError | OSError):
        return UpstreamConnectionError(f"lost the connection to {where}")
    return UpstreamError(f"the call to {where} failed")


async def raise_for_status(response: Answer, deployment: Deployment, secret: str | None) -> None:
    """Nothing for a 2xx answer; otherwise the error its status and (bounded) body say, with
    the connection closed (an error body is never worth keeping the connection for)."""
    if 200 <= response.status < 300:
        return
    try:
        raw = await read_error_body(response)
    finally:
        response.close()
    info = ErrorInfo.from_bytes(raw)
    raise status_error(deployment, response.status, info, response.headers, secret)


async def read_error_body(response: Answer) -> bytes:
    """At most MAX_ERROR_BODY bytes of an error answer; nothing if the body is broken."""
    try:
        return await response.content.readexactly(MAX_ERROR_BODY)
    except asyncio.IncompleteReadError as short:
        return short.partial
    except (aiohttp.ClientError, OSError, TimeoutError):
        return b""
