"""What the runner reads of a deployment on every attempt, read once per deployment.

A config model's attribute costs several times a plain one (pydantic's `__getattr__` keeps the
interpreter from specialising the read), and `Deployment.id` is a property over two of them;
an attempt read a dozen of them (issue 16). The config is frozen, so these never change; a
reloaded config brings new deployment objects, which get entries of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from triage.config.schema import Config, Deployment

MAX_KNOWN = 1024  # deployments are few; more means objects built per call: start over


class Facts:
    """One deployment's id, context window and timeouts as the runner uses them."""

    __slots__ = (
        "deployment",
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
        self.deployment = deployment
        self.id = deployment.id
        self.context_limit = info.max_input_tokens or context_window(deployment)
        self.timeout = params.timeout
        self.stream_timeout = params.stream_timeout
        self.first_token = info.first_token_timeout
        self.connect = info.connect_timeout or config.triage.connect_timeout


class FactBook:
    """`Facts` per deployment, keyed by its identity (the entry holds the deployment)."""

    def __init__(self, config: Config, context_window: Callable[[Deployment], int | None]) -> None:
        self._config = config
        self._context_window = context_window
        self._known: dict[int, Facts] = {}

    def of(self, deployment: Deployment) -> Facts:
        facts = self._known.get(id(deployment))
        if facts is None or facts.deployment is not deployment:
            if len(self._known) >= MAX_KNOWN:
                self._known.clear()
            facts = Facts(deployment, self._config, self._context_window)
            self._known[id(deployment)] = facts
        return facts
