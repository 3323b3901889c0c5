"""The litellm lane: the only module that imports litellm.

It builds one `litellm.Router` from the config in which every deployment is its own model group
(named by its deployment id), with litellm's own retries, cooldowns and fallbacks switched off:
the runner above owns those, so attempts never multiply. What is left to litellm is what it is
good at: translating one call to a provider's API and back. litellm is imported lazily, the first
time a deployment on this lane is used, because importing it takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from triage.config.schema import Config, Deployment
from triage.engine.base import Batch, Call, Reply, Timeouts
from triage.engine.forced_tool import ForcedStream, ForcedTool, forced_tool
from triage.engine.native_errors import ErrorInfo, sanitize
from triage.engine.payload import upstream_body
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
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from triage.telemetry import attempt
from triage.wire import dumps

HttpClient = Literal["aiohttp", "httpx"]
_URL_USER = re.compile(r"//[^/\s@]*@")  # user:password in a URL


def _import_litellm(http_client: HttpClient) -> Any:
    # Must be set before litellm is imported, or it fetches its price map from the internet.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.disable_aiohttp_transport = http_client == "httpx"
    litellm.drop_params = True
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


class LiteLLMLane:
    """A `Transport` over litellm.Router (one call, one deployment, no retries)."""

    def __init__(self, config: Config, *, http_client: HttpClient = "aiohttp") -> None:
        self._config = config
        self._http_client = http_client
        self._router: Any = None
        self._litellm: Any = None

    def _get_router(self) -> Any:
        if self._router is None:
            self._litellm = _import_litellm(self._http_client)
            self._router = self._litellm.Router(
                model_list=[_router_entry(d) for d in self._config.model_list],
                num_retries=0,
                disable_cooldowns=True,
                fallbacks=[],
                routing_strategy="simple-shuffle",
            )
        return self._router

    async def send(self, deployment: Deployment, call: Call, timeouts: Timeouts) -> Reply:
        router = self._get_router()
        forced = forced_tool(deployment, call)
        kwargs = self._kwargs(deployment, call, timeouts, forced)
        try:
            with _traced(deployment, kwargs):
                if call.kind == "chat":
                    response = await router.acompletion(**kwargs)
                elif call.kind == "completion":
                    response = await router.atext_completion(**kwargs)
                else:
                    response = await router.aembedding(**kwargs)
        except Exception as exc:
            raise self.map_error(exc, deployment) from None
        body: dict[str, Any] = response.model_dump(exclude_none=False)
        # litellm has read the whole answer by now (its HTTP clients cannot be bounded from
        # here): what can be done is to refuse relaying it, as the native lane would.
        _check_size(body, self._config.server.max_response_bytes, deployment, "an answer")
        return Reply(body=forced.reply(body) if forced else body)

    async def open_stream(
        self, deployment: Deployment, call: Call, timeouts: Timeouts
    ) -> _LiteLLMStream:
        router = self._get_router()
        forced = forced_tool(deployment, call)
        kwargs = self._kwargs(deployment, call, timeouts, forced)
        try:
            with _traced(deployment, kwargs):
                if call.kind == "chat":
                    response = await router.acompletion(**kwargs)
                else:
                    response = await router.atext_completion(**kwargs)
        except Exception as exc:
            raise self.map_error(exc, deployment) from None
        return _LiteLLMStream(response, self, deployment, forced.stream() if forced else None)

    async def probe(self, deployment: Deployment, timeout: float) -> bool:
        raise NotImplementedError  # probes are lane-independent (engine/probe.py)

    async def close(self) -> None:
        self._router = None

    def _kwargs(
        self, deployment: Deployment, call: Call, timeouts: Timeouts, forced: ForcedTool | None
    ) -> dict[str, Any]:
        kwargs = upstream_body(deployment, call)
        if forced is not None:
            kwargs = forced.rewrite(kwargs)
        kwargs["model"] = deployment.id
        kwargs["timeout"] = timeouts.total
        kwargs["num_retries"] = 0
        if call.kind == "embedding":
            kwargs.pop("stream", None)
        return kwargs

    def map_error(self, exc: BaseException, deployment: Deployment) -> TriageError:
        return map_litellm_error(self._litellm, exc, deployment)


class _LiteLLMStream:
    """Adapts litellm's stream wrapper to plain OpenAI chunk dicts, mapping its errors."""

    def __init__(
        self,
        response: Any,
        lane: LiteLLMLane,
        deployment: Deployment,
        forced: ForcedStream | None = None,
    ) -> None:
        self._response = response
        self._forced = forced
        self._lane = lane
        self._deployment = deployment

    async def _chunks(self) -> AsyncIterator[Batch]:
        limit = self._lane._config.server.max_sse_line_bytes
        try:
            async for chunk in self._response:
                body: dict[str, Any] = chunk.model_dump(exclude_none=False)
                _check_size(body, limit, self._deployment, "a stream chunk")
                yield Batch([body if self._forced is None else self._forced(body)])
        except Exception as exc:
            raise self._lane.map_error(exc, self._deployment) from None

    def __aiter__(self) -> AsyncIterator[Batch]:
        return self._chunks()

    async def aclose(self) -> None:
        closer = getattr(self._response, "aclose", None)
        if closer is not None:
            # Closing a broken stream must not mask the error that broke it.
            with contextlib.suppress(Exception):
                await closer()


def _check_size(body: dict[str, Any], limit: int, deployment: Deployment, what: str) -> None:
    if len(dumps(body)) > limit:
        setting = "max_response_bytes" if what == "an answer" else "max_sse_line_bytes"
        raise UpstreamTooLarge(
            f"deployment `{deployment.id}` sent {what} over {limit} bytes (server.{setting})"
        )


@contextmanager
def _traced(deployment: Deployment, kwargs: dict[str, Any]) -> Iterator[None]:
    """The call under its trace span; its traceparent rides in extra_headers (with the
    deployment's own extra_headers, which a per-call value would otherwise replace)."""
    params = deployment.litellm_params
    with attempt(deployment.id, deployment.model_name, params.model) as headers:
        if headers:
            kwargs["extra_headers"] = {**(params.extra_headers or {}), **headers}
        yield


def _router_entry(deployment: Deployment) -> dict[str, Any]:
    params = deployment.litellm_params
    litellm_params: dict[str, Any] = {"model": params.model}
    if params.api_base:
        litellm_params["api_base"] = params.api_base
    if params.api_key is not None:
        litellm_params["api_key"] = params.api_key.get_secret_value()
    for key in ("api_version", "organization", "extra_headers"):
        value = getattr(params, key)
        if value is not None:
            litellm_params[key] = value
    return {
        "model_name": deployment.id,
        "litellm_params": litellm_params,
        "model_info": {"id": deployment.id},
    }


def _retry_after(exc: BaseException) -> float | None:
    headers: Mapping[str, str] | None = getattr(exc, "headers", None) or getattr(
        exc, "litellm_response_headers", None
    )
    response = getattr(exc, "response", None)
    if not headers and response is not None:
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_litellm_error(litellm: Any, exc: BaseException, deployment: Deployment) -> TriageError:
    """litellm's exception zoo -> our error tree. Messages are re-worded, never relayed."""
    if isinstance(exc, TriageError):
        return exc
    if litellm is None:
        return UpstreamError(f"deployment `{deployment.id}` failed")
    return _map_known(litellm.exceptions, exc, deployment)


def _map_known(ex: Any, exc: BaseException, deployment: Deployment) -> TriageError:  # noqa: C901
    # One flat ladder mirrors litellm's exception tree; order matters (subclasses first).
    where = f"deployment `{deployment.id}`"
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ex.ContextWindowExceededError):
        return ContextWindowExceeded(f"the prompt is too long for {where}")
    if isinstance(exc, ex.ContentPolicyViolationError):
        return ContentPolicyViolation(f"{where} refused the request under its content policy")
    if isinstance(exc, ex.RateLimitError):
        return RateLimited(f"{where} is rate limited", retry_after=_retry_after(exc))
    if isinstance(exc, ex.Timeout):
        return UpstreamTimeout(f"{where} timed out")
    if isinstance(exc, ex.APIConnectionError) and status in (None, 500):
        return UpstreamConnectionError(f"could not connect to {where}")
    if isinstance(exc, ex.ServiceUnavailableError) or status == 503:
        return UpstreamUnavailable(f"{where} is unavailable (HTTP 503)")
    if isinstance(exc, ex.AuthenticationError | ex.PermissionDeniedError | ex.NotFoundError):
        return UpstreamRejected(f"{where} rejected the call (HTTP {status}): check its config")
    if isinstance(exc, ex.BadRequestError | ex.UnprocessableEntityError):
        return BadRequest(f"{where} rejected the request{_upstream_says(exc, deployment)}")
    return UpstreamError(f"{where} failed (HTTP {status or 'error'})")


def _upstream_says(exc: BaseException, deployment: Deployment) -> str:
    """The upstream's own error message, when litellm kept its parsed error document; never
    litellm's exception text, which wraps it in internal names, hints and cut-off bodies (and
    is the same text for a provider it cannot route as for a real upstream 400)."""
    info = ErrorInfo.parse({"error": getattr(exc, "body", None)})
    if not info.message:
        return f" (HTTP {getattr(exc, 'status_code', None) or 400})"
    key = deployment.litellm_params.api_key
    line = sanitize(info.message, key.get_secret_value() if key else None)
    return ": " + _URL_USER.sub("//***@", line)
