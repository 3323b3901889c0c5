"""What the runner reads of a deployment on every attempt, read once per deployment.

A config model's attribute costs several times a plain one (pydantic's `__getattr__` keeps the
interpreter from specialising the read), and `Deployment.id` is a property over two of them;
an attempt read a dozen of them (issue 16). The runner keeps them per deployment in an
`identity.ByIdentity`.
"""

from __future__ import annotations

from collections.abc import Callable

from triage.config.schema import Config, Deployment


class Facts:
    """One deployment's id, context window and timeouts as the runner uses them."""

    __slots__ = (
        "id",
        "context_limit",
        "timeout",
        "stream_timeout",
        "first_token",
        "connect",
    )

    def __init__(
        self,
        deployment: Deployment,
        config: Config,
        context_window: Callable[[Deployment], int | None],
    ) -> None:
        params, info = deployment.litellm_params, deployment.model_info
        self.id = deployment.id
        self.context_limit = info.max_input_tokens or context_window(deployment)
        self.timeout = params.timeout
        self.stream_timeout = params.stream_timeout
        self.first_token = info.first_token_timeout
        self.connect = info.connect_timeout or config.triage.connect_timeout
