"""Free reachability probes: list models or ask for health, never a billed completion."""

from __future__ import annotations

import httpx

from triage.config.schema import Deployment
from triage.engine.native import DEFAULT_API_BASES

DEFAULT_BASES = {
    **DEFAULT_API_BASES,
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
    "ollama_chat": "http://127.0.0.1:11434",
}
OLLAMA = frozenset({"ollama", "ollama_chat"})


def probe_request(deployment: Deployment) -> tuple[str, dict[str, str]] | None:
    """(url, headers) of the free call that tells whether a deployment is reachable."""
    params = deployment.litellm_params
    base = params.api_base or DEFAULT_BASES.get(params.provider)
    if base is None:
        return None
    headers: dict[str, str] = {}
    key = params.api_key.get_secret_value() if params.api_key else None
    if deployment.model_info.health_path:
        return base + deployment.model_info.health_path, headers
    if params.provider in OLLAMA:
        return base + "/api/tags", headers
    if params.provider == "anthropic":
        if key:
            headers["x-api-key"] = key
        headers["anthropic-version"] = "2023-06-01"
        return base + "/v1/models", headers
    if key:
        headers["authorization"] = f"Bearer {key}"
    return base + "/models", headers


async def probe(client: httpx.AsyncClient, deployment: Deployment, timeout: float) -> bool:
    request = probe_request(deployment)
    if request is None:
        return True  # nothing free to ask; live traffic decides
    url, headers = request
    try:
        response = await client.get(url, headers=headers, timeout=timeout)
    except (TimeoutError, httpx.HTTPError, OSError):
        return False
    return response.status_code < 500 and response.status_code not in (401, 403, 404)
