"""JSON responses encoded by `triage.wire` (pydantic-core) rather than the stdlib, and an
answer's headers as ASGI wants them, with the lines they make in the answer's head."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple, cast

from fastapi.responses import JSONResponse

from triage import wire

_JSON = ((b"content-type", b"application/json"),)
RawHeader = tuple[bytes, bytes]

# The names Triage's own answers carry, as sent: lower-case tokens that pass uvicorn's name
# check (a test holds each to it), so an answer of only these is neither lowered nor encoded
# nor checked by name per answer. Any other name takes the general path.
NAMES = {
    name: name.encode()
    for name in (
        "x-request-id",
        "x-triage-sensitive",
        "x-triage-task",
        "x-triage-tier",
        "x-triage-confidence",
        "x-triage-reason",
        "x-triage-route",
        "x-triage-deployment",
        "x-triage-attempts",
        "x-triage-fallbacks",
        "x-triage-cost-usd",
        "x-triage-cache",
        "x-triage-sticky",
        "x-triage-token-count",
        "request-id",
        "cache-control",
    )
}
# The bytes uvicorn's value check (HEADER_VALUE_RE) refuses: control characters but tab.
_BAD_VALUE = bytes((*range(0x09), *range(0x0A, 0x20), 0x7F))
# What an answer's values are joined with to be encoded and checked at once: a byte the check
# refuses, so a value holding one is found (and the join split back exactly otherwise).
_SEPARATOR = "\n"


class Head(list[RawHeader]):
    """An answer's ASGI header list that also carries `lines`, the `name: value\\r\\n` they
    make in its head, and `length`, its content-length (None: none declared). Built only
    where every name is one of `NAMES` or a checked default and every value passed uvicorn's
    check, so the one-write cycle (cycle.py) sends `lines` without going over the headers
    again, while the list still holds what it was built with (`built`: a middleware may
    change it)."""

    __slots__ = ("built", "length", "lines")
    built: list[RawHeader]
    length: bytes | None
    lines: bytes

    def intact(self) -> bool:
        return self == self.built


class _Layout(NamedTuple):
    names: tuple[bytes, ...]
    template: bytes  # the head's lines, `%s` for each value (then the length)
    separators: int


@lru_cache(maxsize=64)
def _layout(keys: tuple[str, ...], defaults: tuple[RawHeader, ...], length: bool) -> _Layout | None:
    """How answers with these header names and defaults are laid out; None where the general
    path takes them: a name not ours, a default not plain content-type or failing uvicorn's
    value check (no name of `NAMES` is a default's: nothing overrides a default here)."""
    names = [NAMES.get(key) for key in keys]
    framing = [b"content-length: %s\r\n"] if length else []
    for name, value in defaults:
        if name not in _DEFAULT_NAMES or value.translate(None, _BAD_VALUE) != value:
            return None
        framing.append(b"%s: %s\r\n" % (name, value.replace(b"%", b"%%")))
    if None in names:
        return None
    ours = cast("list[bytes]", names)
    lines = b"".join([b"%s: %%s\r\n" % name for name in ours] + framing)
    return _Layout(tuple(ours), lines, max(len(keys) - 1, 0))


# What `defaults` may name for a `Head`: headers that change nothing in how it is framed.
_DEFAULT_NAMES = (b"content-type",)


def raw_headers(
    headers: Mapping[str, str], defaults: tuple[RawHeader, ...] = (), length: int | None = None
) -> list[RawHeader]:
    """`headers` as ASGI wants them (Starlette's `init_headers` costs about as long as
    encoding an answer), then `content-length: length` and each of `defaults` whose name they
    do not set: a `Head` where it can be one."""
    layout = _layout(tuple(headers), defaults, length is not None)
    if layout is None:
        return _any_headers(headers, defaults, length)
    try:
        joined = _SEPARATOR.join(headers.values()).encode("latin-1")
    except UnicodeEncodeError:  # raised again by the general path, as it always was
        return _any_headers(headers, defaults, length)
    if len(joined.translate(None, _BAD_VALUE)) != len(joined) - layout.separators:
        return _any_headers(headers, defaults, length)  # uvicorn's own path refuses it
    values = joined.split(b"\n") if headers else []
    head = Head(zip(layout.names, values, strict=False))  # as many: the check counted them
    if length is None:
        head.lines = layout.template % tuple(values)
        head.length = None
    else:
        head.length = declared = b"%d" % length
        head.lines = layout.template % (*values, declared)
        head.append((b"content-length", declared))
    head += defaults
    head.built = [*head]
    return head


def _any_headers(
    headers: Mapping[str, str], defaults: tuple[RawHeader, ...], length: int | None
) -> list[RawHeader]:
    if length is not None:
        defaults = ((b"content-length", b"%d" % length), *defaults)
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
        self.raw_headers = raw_headers(headers or {}, _JSON, len(body))

    def render(self, content: Any) -> bytes:
        return wire.dumps(content)
