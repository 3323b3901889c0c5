"""The `telemetry:` block: where OpenTelemetry traces go (nothing is traced without an endpoint)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class TelemetrySettings(BaseModel):
    """`otlp_endpoint`: an OTLP/HTTP collector (`http://collector:4318` gets `/v1/traces`
    appended; a URL with a path is used as it is). Prompt and completion text go into spans
    only for keys with `log_content`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    service_name: str = Field(default="triage", min_length=1)
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    export_timeout: Annotated[float, Field(gt=0)] = 5.0
