"""Error responses shaped the way each real backend shapes them (OpenAI, Ollama, Anthropic).

Clients and LiteLLM map errors by status *and* body (for example `context_length_exceeded`), so
the bodies mimic the real services closely enough for that mapping to work.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from triage.fakeupstream.settings import Fault

OPENAI = "openai"
OLLAMA = "ollama"
ANTHROPIC = "anthropic"

_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_MESSAGES = {
    400: "Invalid request (fake upstream fault).",
    401: "Incorrect API key provided (fake upstream fault).",
    404: "The model does not exist (fake upstream fault).",
    429: "Rate limit reached for requests (fake upstream fault).",
    500: "The server had an error while processing your request (fake upstream fault).",
    502: "Bad gateway (fake upstream fault).",
    503: "The engine is currently overloaded, please try again later (fake upstream fault).",
    504: "Gateway timeout (fake upstream fault).",
}
CONTEXT_MESSAGE = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9000 tokens. Please reduce the length of the messages."
)
POLICY_MESSAGE = (
    "Your request was rejected as a result of our safety system (content_filter). "
    "Your prompt may contain text that is not allowed by our safety system."
)


def default_message(status: int) -> str:
    return _MESSAGES.get(status, f"HTTP {status} (fake upstream fault).")


def error_body(protocol: str, status: int, message: str, code: str | None = None) -> Any:
    """The JSON error document `protocol` sends with `status`."""
    if protocol == OLLAMA:
        return {"error": message}
    if protocol == ANTHROPIC:
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, default_code = _OPENAI_TYPES.get(status, ("server_error", None))
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": "messages" if code == "context_length_exceeded" else None,
            "code": code or default_code,
        }
    }


def error_response(
    protocol: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = {} if retry_after is None else _retry_headers(retry_after)
    body = json.dumps(error_body(protocol, status, message, code))
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def fault_response(protocol: str, fault: Fault) -> web.Response:
    """The HTTP answer for a status-like fault (status, context_window, content_policy)."""
    status = fault.status or 500
    if fault.kind == "context_window":
        message, code = fault.message or CONTEXT_MESSAGE, "context_length_exceeded"
        if protocol == ANTHROPIC:
            message = fault.message or "prompt is too long: 9000 tokens > 8192 maximum"
    elif fault.kind == "content_policy":
        message, code = fault.message or POLICY_MESSAGE, "content_policy_violation"
    else:
        message, code = fault.message or default_message(status), None
    if fault.body is None:
        return error_response(protocol, status, message, code=code, retry_after=fault.retry_after)
    headers = {} if fault.retry_after is None else _retry_headers(fault.retry_after)
    if isinstance(fault.body, str):
        text, ctype = fault.body, fault.content_type or "text/plain"
    else:
        text, ctype = json.dumps(fault.body), fault.content_type or "application/json"
    headers["Content-Type"] = ctype
    return web.Response(status=status, body=text.encode(), headers=headers)


def _retry_headers(retry_after: float) -> dict[str, str]:
    seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
    return {"Retry-After": str(seconds), "retry-after-ms": str(int(retry_after * 1000))}


class BadRequest(Exception):
    """A malformed request; the server answers 400 in the endpoint's protocol shape."""


def int_field(body: dict[str, Any], name: str, default: int | None, minimum: int = 0) -> int | None:
    """An optional integer request field, validated the way the real APIs do (400 otherwise)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"'{name}' must be an integer >= {minimum}, got {value!r}")
    return value


def stop_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BadRequest(f"'stop' must be a string or a list of strings, got {value!r}")
