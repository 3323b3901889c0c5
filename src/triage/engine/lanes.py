"""Which lane carries each deployment: litellm for providers that need translation, the native
lane (when present) for deployments that already speak the OpenAI protocol."""

from __future__ import annotations

from triage.config.schema import Config, Deployment
from triage.engine.base import Transport
from triage.engine.litellm_engine import HttpClient, LiteLLMLane


class Lanes:
    def __init__(self, config: Config, *, http_client: HttpClient = "aiohttp") -> None:
        self.config = config
        self.litellm = LiteLLMLane(config, http_client=http_client)

    def for_deployment(self, deployment: Deployment) -> Transport:
        return self.litellm

    async def close(self) -> None:
        await self.litellm.close()
