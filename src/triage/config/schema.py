"""The configuration schema: frozen pydantic models that reject unknown keys.

Deployments use LiteLLM's own shape (`model_list`, `litellm_params`, `model_info`,
`router_settings`) so a LiteLLM user can paste theirs; Triage's own settings live under `triage`.
Cross-references (routes, fallbacks, aliases) are checked by `references.py` after validation, so
that every bad reference is reported with its own YAML path at load time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from triage.config.auth import AuthSettings
from triage.config.responses import ResponsesSettings
from triage.config.routes import TriageSettings
from triage.config.telemetry import TelemetrySettings

Strict = ConfigDict(extra="forbid", frozen=True)
PositiveFloat = Annotated[float, Field(gt=0)]

# Providers whose deployments speak the OpenAI wire protocol: eligible for the native lane.
OPENAI_PROTOCOL_PROVIDERS = frozenset(
    {
        "openai",
        "hosted_vllm",
        "vllm",
        "llamacpp",
        "text-completion-openai",
        "groq",
        "together_ai",
        "fireworks_ai",
        "deepseek",
        "mistral",
        "openrouter",
        "ollama_openai",
    }
)


class LiteLLMParams(BaseModel):
    """The keys of LiteLLM's `litellm_params` that Triage understands."""

    model_config = Strict

    model: str = Field(min_length=3)
    api_base: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None
    organization: str | None = None
    timeout: PositiveFloat | None = None
    stream_timeout: PositiveFloat | None = None
    max_retries: Annotated[int, Field(ge=0)] | None = None
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    extra_headers: dict[str, str] | None = None
    weight: PositiveFloat | None = None

    @field_validator("model")
    @classmethod
    def _provider_prefix(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError(f'"{value}" needs a provider prefix, e.g. "openai/{value}"')
        return value

    @field_validator("api_base")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("not a URL")
        return value.rstrip("/")

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0]

    @property
    def model_name(self) -> str:
        return self.model.split("/", 1)[1]


class ModelInfo(BaseModel):
    """Per-deployment facts Triage needs beyond how to call it."""

    model_config = Strict

    id: str | None = None
    local: bool = False
    lane: Literal["auto", "native", "litellm"] = "auto"
    max_input_tokens: Annotated[int, Field(gt=0)] | None = None
    gpu_hour_cost: Annotated[Decimal, Field(ge=0)] | None = None
    connect_timeout: PositiveFloat | None = None
    first_token_timeout: PositiveFloat | None = None
    stream_idle_timeout: PositiveFloat | None = None
    health_path: str | None = None


class Deployment(BaseModel):
    """One entry of `model_list`: a concrete backend serving a model group."""

    model_config = Strict

    model_name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$")
    litellm_params: LiteLLMParams
    model_info: ModelInfo = ModelInfo()

    @property
    def id(self) -> str:
        assert self.model_info.id is not None  # filled by Config's validator
        return self.model_info.id

    @property
    def speaks_openai(self) -> bool:
        return self.litellm_params.provider in OPENAI_PROTOCOL_PROVIDERS


FallbackList = list[dict[str, list[str]]]


class RetryPolicy(BaseModel):
    """LiteLLM's `retry_policy`: retries per failure kind (None = use num_retries)."""

    model_config = Strict

    BadRequestErrorRetries: Annotated[int, Field(ge=0)] = 0
    AuthenticationErrorRetries: Annotated[int, Field(ge=0)] = 0
    TimeoutErrorRetries: Annotated[int, Field(ge=0)] | None = None
    RateLimitErrorRetries: Annotated[int, Field(ge=0)] | None = None
    ContentPolicyViolationErrorRetries: Annotated[int, Field(ge=0)] = 0
    InternalServerErrorRetries: Annotated[int, Field(ge=0)] | None = None
    ContextWindowExceededErrorRetries: Annotated[int, Field(ge=0)] = 0

    def for_kind(self, kind: str, default: int) -> int:
        value: Any = getattr(self, kind, None)
        return default if value is None else int(value)


class RouterSettings(BaseModel):
    """LiteLLM's `router_settings`, with LiteLLM's names and meanings."""

    model_config = Strict

    routing_strategy: Literal[
        "latency-based-routing", "simple-shuffle", "least-busy", "usage-based-routing"
    ] = "latency-based-routing"
    num_retries: Annotated[int, Field(ge=0, le=10)] = 2
    timeout: PositiveFloat = 60.0
    stream_timeout: PositiveFloat | None = None
    retry_after: Annotated[float, Field(ge=0)] = 0.0
    fallbacks: FallbackList = []
    context_window_fallbacks: FallbackList = []
    content_policy_fallbacks: FallbackList = []
    retry_policy: RetryPolicy = RetryPolicy()
    allowed_fails: Annotated[int, Field(ge=1)] = 3
    cooldown_time: Annotated[float, Field(ge=0)] = 30.0
    # Requested model name (`*` wildcards) -> model group or alias; see config/group_alias.py.
    model_group_alias: dict[str, str] = {}


class ServerSettings(BaseModel):
    """How the HTTP server listens and what it accepts."""

    model_config = Strict

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4000
    max_body_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024
    max_messages: Annotated[int, Field(gt=0)] = 1024
    max_tokens: Annotated[int, Field(gt=0)] = 131072
    cors_origins: list[str] = []
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Host names served (against DNS rebinding): None = the loopback names and the bind host,
    # or any host when the bind is every interface and keys are configured. "*" = any host.
    allowed_hosts: list[str] | None = None
    # GET /metrics without the admin key (for scrapers that cannot send one).
    metrics_public: bool = False
    # Bounds on what clients send and backends answer (api/server.py, engine/native.py).
    max_header_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    max_headers: Annotated[int, Field(ge=8)] = 100
    header_timeout: PositiveFloat = 10.0
    body_timeout: PositiveFloat = 30.0
    max_connections: Annotated[int, Field(gt=0)] = 1000
    # Graceful drain on SIGTERM (engine/drain.py): readiness 503 at once, new connections
    # refused after drain_delay, streams still running drain_timeout after the signal ended.
    drain_timeout: PositiveFloat = 30.0
    drain_delay: Annotated[float, Field(ge=0)] = 0.0
    max_response_bytes: Annotated[int, Field(ge=1024)] = 32 * 1024 * 1024
    max_sse_line_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # Seconds without anything to send after which a Messages stream sends a `ping` event.
    sse_ping_interval: PositiveFloat = 10.0


class StateSettings(BaseModel):
    """Where per-key limits, spend and reservations live: `memory` (one process), `sqlite`
    (a file shared by the worker processes of one machine, for `serve --workers N`) or `redis`
    (a Redis/Valkey server shared by every replica: limits, budgets, cooldowns, latency
    statistics, sticky pins and stored responses). `url` may hold a password: write it as an
    `os.environ/` reference."""

    model_config = Strict

    backend: Literal["memory", "sqlite", "redis"] = "memory"
    path: str = "triage-state.db"
    url: SecretStr | None = None
    # Seconds to wait for the store before treating it as unreachable (per attempt).
    timeout: Annotated[float, Field(gt=0, le=30)] = 1.0
    reservation_ttl: Annotated[float, Field(gt=0)] = 900.0

    @model_validator(mode="after")
    def _redis_url(self) -> StateSettings:
        if self.backend != "redis":
            return self
        if self.url is None:
            raise ValueError("backend redis needs url: redis://host:port/db (or rediss://)")
        parsed = urlparse(self.url.get_secret_value())
        if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
            raise ValueError("url: expected redis://host:port/db, rediss://… or unix://path")
        return self


class Config(BaseModel):
    """The whole routing configuration."""

    model_config = Strict

    model_list: list[Deployment] = Field(min_length=1)
    router_settings: RouterSettings = RouterSettings()
    triage: TriageSettings = TriageSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    state: StateSettings = StateSettings()
    responses: ResponsesSettings = ResponsesSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @model_validator(mode="before")
    @classmethod
    def _fill_ids(cls, data: Any) -> Any:
        # Deployments without model_info.id get a stable one: "<group>-<index in group>".
        if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
            return data
        counts: dict[str, int] = {}
        for entry in data["model_list"]:
            if not isinstance(entry, dict):
                continue
            group = str(entry.get("model_name", ""))
            counts[group] = counts.get(group, 0) + 1
            info = entry.get("model_info")
            if info is None:
                entry["model_info"] = info = {}
            if isinstance(info, dict) and not info.get("id"):
                info["id"] = f"{group}-{counts[group]}"
        return data

    @property
    def groups(self) -> dict[str, list[Deployment]]:
        out: dict[str, list[Deployment]] = {}
        for deployment in self.model_list:
            out.setdefault(deployment.model_name, []).append(deployment)
        return out
