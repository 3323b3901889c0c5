"""The `auth:` block: client keys with their permissions and limits, and the admin key.

Keys are never written in the file: each is an environment reference (`os.environ/NAME`) or a
SHA-256 hex digest (`key_sha256`). The loader refuses a plaintext key with its YAML path.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Strict = ConfigDict(extra="forbid", frozen=True)
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
Money = Annotated[Decimal, Field(ge=0)]


class Budget(BaseModel):
    model_config = Strict

    daily_usd: Money | None = None
    monthly_usd: Money | None = None


class KeySpec(BaseModel):
    """One client key and what it may do."""

    model_config = Strict

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    key: SecretStr | None = None
    key_sha256: Sha256 | None = None
    models: list[str] = []
    tasks: list[str] = []
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    budget: Budget = Budget()
    data_policy: Literal["any", "local_only"] = "any"
    # When the shared state store (state.backend: redis) cannot be reached: refuse with 503
    # (`fail_closed`, the default for a key with a budget) or serve without counting
    # (`fail_open`, the default for a key without one).
    on_store_failure: Literal["fail_closed", "fail_open"] | None = None
    log_content: bool = False

    @property
    def fails_open(self) -> bool:
        if self.on_store_failure is not None:
            return self.on_store_failure == "fail_open"
        return self.budget.daily_usd is None and self.budget.monthly_usd is None

    @model_validator(mode="after")
    def _one_secret(self) -> KeySpec:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("set exactly one of key (an os.environ/ reference) or key_sha256")
        return self


class AuthSettings(BaseModel):
    model_config = Strict

    keys: list[KeySpec] = []
    admin_key: SecretStr | None = None
    admin_key_sha256: Sha256 | None = None
    allow_public_without_keys: bool = False
    # The output a request is assumed to produce, per choice, when it sets no max_tokens:
    # what a tpm limit or a budget holds for it until it is settled.
    reserve_output_tokens: Annotated[int, Field(gt=0)] = 4096

    @property
    def enabled(self) -> bool:
        return bool(self.keys)


# Paths whose raw YAML value must be an environment reference, never a literal secret.
SECRET_PATHS = ("auth.admin_key",)
