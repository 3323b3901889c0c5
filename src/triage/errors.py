"""One error tree. Each class knows its HTTP status, OpenAI error type and whether it is retryable;
its Anthropic type follows from its status (`anthropic_type`).

Code raises these; only the API layer renders them (as OpenAI-shaped JSON or an SSE error event).
Messages must never carry secrets or upstream bodies verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class TriageError(Exception):
    """Base of every error a client may see."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False
    # The failure kind used to choose a fallback list and a retry count (LiteLLM's names).
    kind: ClassVar[str] = "general"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(TriageError):
    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"
    kind = "BadRequestErrorRetries"


class PayloadTooLarge(TriageError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(TriageError):
    """The client took longer than `server.header_timeout` / `server.body_timeout` to send."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class HeadersTooLarge(TriageError):
    """Request headers over `server.max_header_bytes` or `server.max_headers`."""

    status = 431
    error_type = "invalid_request_error"
    default_code = "request_headers_too_large"


class ServerBusy(TriageError):
    """More open connections than `server.max_connections`."""

    status = 503
    error_type = "api_error"
    default_code = "server_busy"


class StoreUnavailable(TriageError):
    """The shared state store (Redis) cannot be reached and the key fails closed."""

    status = 503
    error_type = "api_error"
    default_code = "state_store_unavailable"


class ContextWindowExceeded(BadRequest):
    default_code = "context_length_exceeded"
    kind = "ContextWindowExceededErrorRetries"


class ContentPolicyViolation(BadRequest):
    default_code = "content_policy_violation"
    kind = "ContentPolicyViolationErrorRetries"


class AuthenticationFailed(TriageError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"
    kind = "AuthenticationErrorRetries"


class PermissionDenied(TriageError):
    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(TriageError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class RateLimited(TriageError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True
    kind = "RateLimitErrorRetries"


class UpstreamError(TriageError):
    """An upstream 5xx or a malformed upstream answer."""

    status = 502
    error_type = "api_error"
    default_code = "upstream_error"
    retryable = True
    kind = "InternalServerErrorRetries"


class UpstreamTooLarge(UpstreamError):
    """An upstream answer over `server.max_response_bytes`, or one SSE line or event over
    `server.max_sse_line_bytes`: asking again would most likely bring the same."""

    default_code = "upstream_too_large"
    retryable = False


class UpstreamUnavailable(UpstreamError):
    status = 503
    default_code = "upstream_unavailable"


class UpstreamConnectionError(UpstreamError):
    status = 502
    default_code = "upstream_connection_error"
    kind = "InternalServerErrorRetries"


class UpstreamRejected(TriageError):
    """The upstream refused Triage's own credentials or model name: a config problem."""

    status = 502
    error_type = "api_error"
    default_code = "upstream_rejected"
    kind = "AuthenticationErrorRetries"


class UpstreamTimeout(TriageError):
    status = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"
    retryable = True
    kind = "TimeoutErrorRetries"


class StreamStalled(UpstreamTimeout):
    """A started stream sent nothing for `stream_idle_timeout` seconds (no `[DONE]`, no close)."""

    default_code = "upstream_stream_stalled"


class NoHealthyDeployment(TriageError):
    """Every deployment of every group on the route is cooling down."""

    status = 503
    error_type = "api_error"
    default_code = "no_healthy_deployment"


@dataclass(frozen=True)
class Attempt:
    """One upstream attempt, as summarised in a fallback error."""

    group: str
    deployment: str
    error: str
    status: int


class AllAttemptsFailed(TriageError):
    """Every candidate on the route failed; keeps each attempt's failure."""

    error_type = "api_error"
    default_code = "all_deployments_failed"

    def __init__(self, attempts: Sequence[Attempt], last: TriageError) -> None:
        summary = "; ".join(f"{a.group}/{a.deployment}: {a.error}" for a in attempts)
        super().__init__(
            f"all {len(attempts)} attempt(s) failed: {summary}",
            retry_after=last.retry_after,
        )
        self.attempts = tuple(attempts)
        self.last = last
        # The last failure decides the status (429 stays a rate limit, 504 a timeout), except
        # that a generic upstream 500 is reported as the gateway's 502.
        self.status_override = 502 if last.status == 500 else last.status

    @property
    def http_status(self) -> int:
        return self.status_override


def http_status(error: TriageError) -> int:
    if isinstance(error, AllAttemptsFailed):
        return error.http_status
    return error.status


def openai_type(error: TriageError) -> str:
    if isinstance(error, AllAttemptsFailed):
        return error.last.error_type if error.last.status < 500 else error.error_type
    return error.error_type


# Anthropic's error types by HTTP status: the anthropic SDK picks its exception class by status,
# Claude Code reads the type. Anything else is an `api_error`.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    421: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
    504: "timeout_error",
}


def anthropic_type(error: TriageError) -> str:
    """The error's type as Anthropic's Messages API names it."""
    return _ANTHROPIC_TYPES.get(http_status(error), "api_error")


CLIENT_DISCONNECTED = "client_disconnected"  # the error kind of a request whose client left


def error_kind(error: TriageError) -> str:
    """What failed, as a bounded name for the ledger, logs and metric labels: the class's own
    code (the last failure's, when every attempt failed), never a message or client text."""
    if isinstance(error, AllAttemptsFailed):
        return error_kind(error.last)
    return type(error).default_code or "internal_error"
