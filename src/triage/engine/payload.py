"""The body that leaves Triage for one deployment, shared by every lane.

Only allow-listed client fields reach here (protocol.forwarded). This adds what the deployment
needs: `max_completion_tokens` becomes `max_tokens` for backends that only know the older name,
and streams always ask for a usage chunk so that every request can be metered (the service strips
it again when the client did not ask for one).
"""

from __future__ import annotations

from typing import Any

from triage.config.schema import Deployment
from triage.engine.base import Call

# Providers that understand `max_completion_tokens` themselves; everyone else gets `max_tokens`.
KNOWS_MAX_COMPLETION_TOKENS = frozenset({"openai", "azure"})
OPENAI_HOSTS = ("openai.com", "azure.com")


def knows_max_completion_tokens(deployment: Deployment) -> bool:
    """Only OpenAI's own API (its reasoning models reject `max_tokens`) gets the newer name;
    `openai/…` pointed at another server (Ollama's /v1, TGI, llama.cpp) gets `max_tokens`."""
    params = deployment.litellm_params
    if params.provider not in KNOWS_MAX_COMPLETION_TOKENS:
        return False
    return params.api_base is None or any(host in params.api_base for host in OPENAI_HOSTS)


def upstream_body(deployment: Deployment, call: Call) -> dict[str, Any]:
    body = dict(call.body)
    if call.kind != "embedding":
        body["stream"] = call.stream
    limit = body.pop("max_completion_tokens", None)
    if limit is not None:
        if knows_max_completion_tokens(deployment):
            body["max_completion_tokens"] = limit
        else:
            body.setdefault("max_tokens", limit)
    if call.stream:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    else:
        body.pop("stream_options", None)
    return body
