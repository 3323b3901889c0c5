"""JSON responses encoded by `triage.wire` (pydantic-core) rather than the stdlib."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from triage import wire


class FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse with a Rust encoder (~4× faster on an answer's body) and its
    header list built in one pass (Starlette's takes about as long again as the encoding)."""

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body = wire.dumps(content)
        raw = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        names = {name for name, _ in raw} if raw else ()
        if b"content-length" not in names:
            raw.append((b"content-length", str(len(body)).encode()))
        if b"content-type" not in names:
            raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw

    def render(self, content: Any) -> bytes:
        return wire.dumps(content)
