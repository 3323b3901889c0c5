"""Settings of the Responses API's stored responses (`responses:` in the config)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ResponsesSettings(BaseModel):
    """`store`: keep responses a client asks to store (`store: true`, the API's default), so
    `previous_response_id` can continue them; false turns storage off. `store_ttl`: seconds a
    stored response is kept. `path`: the SQLite file (default: `triage-responses.db` beside the
    ledger)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: bool = True
    store_ttl: Annotated[float, Field(gt=0)] = 30 * 24 * 3600.0
    path: str | None = None
