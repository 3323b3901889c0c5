"""JSON responses encoded by `triage.wire` (pydantic-core) rather than the stdlib."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.responses import JSONResponse

from triage import wire

_JSON = (b"content-type", b"application/json")
RawHeader = tuple[bytes, bytes]


def raw_headers(headers: Mapping[str, str], defaults: Iterable[RawHeader]) -> list[RawHeader]:
    """`headers` as ASGI wants them, in one pass (Starlette's `init_headers` costs about as
    long as encoding an answer), then each of `defaults` whose name they do not set."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    names = {name for name, _ in raw} if raw else ()
    raw += [default for default in defaults if default[0] not in names]
    return raw


class FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse with a Rust encoder (~4× faster on an answer's body) and its
    header list built in one pass (Starlette's takes about as long again as the encoding)."""

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body = wire.dumps(content)
        length = (b"content-length", str(len(body)).encode())
        self.raw_headers = raw_headers(headers or {}, (length, _JSON))

    def render(self, content: Any) -> bytes:
        return wire.dumps(content)
