"""Triage's own settings (the `triage:` block): aliases, task routes, escalation, reliability
budgets, savings reference and the usage ledger."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Strict = ConfigDict(extra="forbid", frozen=True)
PositiveFloat = Annotated[float, Field(gt=0)]


class Route(BaseModel):
    """An ordered list of model groups (first tried, the rest fallbacks) and its time limits."""

    model_config = Strict

    groups: list[str] = Field(min_length=1)
    timeout: PositiveFloat | None = None
    first_token_timeout: PositiveFloat | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: object) -> object:
        # A bare list is the short form: `code: [local-coder, cloud-large]`.
        return {"groups": data} if isinstance(data, list) else data


class Escalate(BaseModel):
    """Hard prompts of any task go to a stronger route."""

    model_config = Strict

    difficulty_above: Annotated[float, Field(ge=0, le=1)] = 0.8
    route: Route


class Savings(BaseModel):
    model_config = Strict

    reference_model: str | None = "openai/gpt-4o"


class LedgerSettings(BaseModel):
    """Where the usage ledger lives: a SQLite file (`path`), or a PostgreSQL table shared by a
    fleet (`dsn`; keep its password out of the YAML: `password: os.environ/NAME`, or the whole
    `dsn: os.environ/NAME`). Both are secrets: never logged or shown."""

    model_config = Strict

    enabled: bool = True
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "triage-usage.db"
    dsn: SecretStr | None = None
    password: SecretStr | None = None
    connect_timeout: PositiveFloat = 5.0

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> LedgerSettings:
        if self.backend == "postgres" and self.dsn is None:
            raise ValueError("backend postgres needs a dsn (e.g. postgresql://triage@db/triage)")
        return self


DetectorName = Literal[
    "email",
    "phone",
    "card",
    "iban",
    "national_id",
    "api_key",
    "private_key",
    "unreadable_token_ids",
]
DETECTORS: tuple[DetectorName, ...] = get_args(DetectorName)
"""The built-in sensitive-data detectors, in the order findings are reported."""


class SensitiveSettings(BaseModel):
    """Requests carrying sensitive data go only to `model_info.local` deployments."""

    model_config = Strict

    enabled: bool = True
    detectors: list[DetectorName] = list(DETECTORS)
    patterns: dict[str, str] = {}

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a valid regex: {exc}") from None
        return value


class CacheSettings(BaseModel):
    """The exact-match response cache (`triage.cache`), off unless turned on.

    `enabled` is the default for every request; `routes` (a route name, or a model group named by
    the client) and `keys` (a key id) turn it on or off for theirs: a key's setting wins over its
    route's. An entry is keyed by the key id (unless `share_across_keys`; never for a sensitive
    request), the route's model groups and every field that changes the output.
    """

    model_config = Strict

    enabled: bool = False
    ttl: PositiveFloat = 3600.0
    backend: Literal["memory", "redis"] = "memory"
    max_entries: Annotated[int, Field(gt=0)] = 10_000
    max_entry_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    share_across_keys: bool = False
    routes: dict[str, bool] = {}
    keys: dict[str, bool] = {}


class TriageSettings(BaseModel):
    """The `triage:` block."""

    model_config = Strict

    aliases: list[str] = ["auto"]
    default_route: Route | None = None
    routes: dict[str, Route] = {}
    escalate: Escalate | None = None
    examples: dict[str, list[str]] = {}
    tiers: dict[str, str] = {}
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.3
    classifier_path: str | None = None
    deadline: PositiveFloat = 120.0
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    connect_timeout: PositiveFloat = 5.0
    first_token_timeout: PositiveFloat | None = None
    # Seconds a started stream may go without any data before it is ended with an error event.
    stream_idle_timeout: PositiveFloat = 30.0
    lane: Literal["auto", "native", "litellm"] = "auto"
    # The model group that serves /v1/embeddings under an alias (embeddings are not classified).
    embedding_route: str | None = None
    savings: Savings = Savings()
    ledger: LedgerSettings = LedgerSettings()
    sensitive: SensitiveSettings = SensitiveSettings()
    cache: CacheSettings = CacheSettings()
