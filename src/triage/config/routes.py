"""Triage's own settings (the `triage:` block): aliases, task routes, escalation, reliability
budgets, savings reference and the usage ledger."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    model_config = Strict

    enabled: bool = True
    path: str = "triage-usage.db"


class SensitiveSettings(BaseModel):
    """Requests carrying sensitive data go only to `model_info.local` deployments."""

    model_config = Strict

    enabled: bool = True
    detectors: list[
        Literal[
            "email",
            "phone",
            "card",
            "iban",
            "national_id",
            "api_key",
            "private_key",
            "unreadable_token_ids",
        ]
    ] = [
        "email",
        "phone",
        "card",
        "iban",
        "national_id",
        "api_key",
        "private_key",
        "unreadable_token_ids",
    ]
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
