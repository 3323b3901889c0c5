"""Which lane carries each deployment: the native lane for deployments that already speak the
OpenAI protocol, litellm for providers that need translation.

A deployment's own `model_info.lane` wins; "auto" defers to `triage.lane`, and "auto"/"native"
there send OpenAI-protocol deployments native. `references.py` rejects a deployment pinned to the
native lane that cannot be carried by it.
"""

from __future__ import annotations

from typing import Literal

from triage.config.schema import Config, Deployment
from triage.engine.anthropic_lane import AnthropicLane
from triage.engine.base import Transport
from triage.engine.litellm_engine import HttpClient, LiteLLMLane
from triage.engine.native import NativeLane

LaneName = Literal["native", "litellm"]


def lane_name(config: Config, deployment: Deployment) -> LaneName:
    """The lane a deployment is carried by under `config`."""
    chosen = deployment.model_info.lane
    if chosen != "auto":
        return chosen
    if config.triage.lane == "litellm" or not deployment.speaks_openai:
        return "litellm"
    return "native"


def _anthropic_native(config: Config, deployment: Deployment) -> bool:
    """Anthropic deployments take Messages calls natively unless pinned to litellm (by their
    own `model_info.lane` or by `triage.lane`)."""
    return (
        deployment.litellm_params.provider == "anthropic"
        and deployment.model_info.lane == "auto"
        and config.triage.lane != "litellm"
    )


class Lanes:
    """Both lanes, built once per app; `force` pins every deployment to one lane (tests)."""

    def __init__(
        self,
        config: Config,
        *,
        http_client: HttpClient = "aiohttp",
        force: LaneName | None = None,
    ) -> None:
        self.config = config
        self.force = force
        self.litellm = LiteLLMLane(config, http_client=http_client)
        self.native = NativeLane(config.server)
        # Anthropic deployments: Messages calls natively, the rest through litellm.
        self.anthropic = AnthropicLane(self.litellm, config.server)

    def for_deployment(self, deployment: Deployment) -> Transport:
        name = self.force or lane_name(self.config, deployment)
        if name == "native":
            return self.native
        if self.force is None and _anthropic_native(self.config, deployment):
            return self.anthropic
        return self.litellm

    async def close(self) -> None:
        try:
            await self.native.close()
            await self.anthropic.close()
        finally:
            await self.litellm.close()
