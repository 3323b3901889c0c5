"""Free reachability probes: list models or ask for health, never a billed completion."""

from __future__ import annotations

from typing import TYPE_CHECKING

from triage.config.schema import Deployment
from triage.engine.native import DEFAULT_API_BASES

if TYPE_CHECKING:
    import httpx

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
    import httpx  # here, not at import: serve starts without httpx until a probe runs

    try:
        response = await client.get(url, headers=headers, timeout=timeout)
    except (TimeoutError, httpx.HTTPError, OSError):
        return False
    if response.status_code >= 500 or response.status_code in (401, 403, 404):
        return False
    return serves_model(deployment, response)


# Servers that answer any model name with whatever they have loaded (llama-cpp-python does):
# for them a listed model is the only proof the deployment's model is there.
CHECK_MODEL = frozenset({"hosted_vllm", "vllm", "llamacpp", "ollama", "ollama_chat"})


def serves_model(deployment: Deployment, response: httpx.Response) -> bool:
    params = deployment.litellm_params
    custom_openai = params.provider == "openai" and params.api_base is not None
    if params.provider not in CHECK_MODEL and not custom_openai:
        return True
    try:
        body = response.json()
    except ValueError:
        return True  # not a model list (a /health path): reachability is all we learn
    entries = body.get("data") or body.get("models") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return True
    names = {
        str(e.get("id") or e.get("name") or e.get("model")) for e in entries if isinstance(e, dict)
    }
    wanted = params.model_name
    return wanted in names or f"{wanted}:latest" in names
