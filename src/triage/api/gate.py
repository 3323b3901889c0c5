"""The front door, in front of every route and in every mode (keyless loopback mode included):
the `Host` a request names (DNS rebinding), where a browser request comes from (`Origin`,
`Sec-Fetch-Site`), the content type of a POST body, and the runtime each request pins until it
ends (so a reload can close the one it replaced once nothing uses it).

A web page cannot read a cross-origin answer, but it can *send* "simple" requests (form and
`text/plain` POSTs) without a CORS preflight, and a rebinding page can make its own name point at
127.0.0.1. So a request is refused here, before any route runs, when:

- its `Host` (port ignored) is not an allowed host: 421 `host_not_allowed`;
- it carries an `Origin` that is neither in `server.cors_origins` nor the request's own origin,
  or `Sec-Fetch-Site: cross-site` without such an origin: 403 `cross_origin_refused`;
- it is a POST whose `Content-Type` is set and is not JSON (`application/json`,
  `application/*+json`, any parameters): 415 `unsupported_media_type`. A POST without one is
  read as JSON (no browser sends a body that way without an `Origin`).

Clients that are not browsers send no `Origin`; the openai SDK sends `application/json`.

One pure-ASGI layer because it sits on the hot path: it reads the raw header list once and
allocates nothing for a request that passes beyond the host name it compares.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from triage.api.errors import error_body
from triage.errors import PermissionDenied, TriageError
from triage.wire import dumps

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Liveness reveals nothing and is what orchestrators probe by IP: never refused for its Host.
_OPEN_PATHS = frozenset({"/health"})


class HostNotAllowed(TriageError):
    status = 421
    error_type = "invalid_request_error"
    default_code = "host_not_allowed"


class CrossOriginRefused(PermissionDenied):
    default_code = "cross_origin_refused"


class UnsupportedMediaType(TriageError):
    status = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


Refusal = tuple[int, bytes]


def _rendered(error: TriageError) -> Refusal:
    return error.status, dumps(error_body(error))


_WRONG_HOST = _rendered(HostNotAllowed("this server does not serve that Host name"))
_CROSS_ORIGIN = _rendered(
    CrossOriginRefused(
        "cross-origin browser requests are refused; list the origin in server.cors_origins "
        "to allow it"
    )
)
_NOT_JSON = _rendered(UnsupportedMediaType("send the body as application/json"))


class Pins(Protocol):
    """What the gate needs from the app state: count a request in and out of the runtime."""

    def enter(self) -> int: ...

    def leave(self, epoch: int) -> None: ...


def allowed_hosts(
    configured: list[str] | None, *, bind_host: str | None, keyed: bool
) -> frozenset[bytes] | None:
    """The Host names (lower-case, IPv6 in brackets, no port) to serve; None: any host.

    Unconfigured: the loopback names plus the bind host when it is one name or address; a bind
    on every interface allows any host only when client keys are configured (a keyless server
    that was allowed to listen publicly must list its names)."""
    if configured is not None:
        if "*" in configured:
            return None
        return frozenset(_host_name(name) for name in configured)
    names = {_host_name(name) for name in LOOPBACK_HOSTS}
    if bind_host:
        if _is_wildcard(bind_host):
            if keyed:
                return None
        else:
            names.add(_host_name(bind_host))
    return frozenset(names)


def _host_name(name: str) -> bytes:
    name = name.strip().lower().rstrip(".")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # a bare IPv6 address, as a Host header spells it
    return name.encode()


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host in ("", "*")


def _requested_host(value: bytes) -> bytes:
    """A Host header's name: lower-case, without the port or a trailing dot."""
    bracket = value.startswith(b"[")  # an IPv6 literal: its colons are not the port's
    name = value[: value.find(b"]") + 1] if bracket else value.partition(b":")[0]
    return name.lower().rstrip(b".")


def is_json(content_type: bytes) -> bool:
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class Gate:
    """Pure-ASGI middleware: refuse as described above, and pin the runtime per request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        pins: Pins,
        hosts: frozenset[bytes] | None,
        cors_origins: Iterable[str],
    ) -> None:
        self.app = app
        self.pins = pins
        self.hosts = hosts
        origins = list(cors_origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(origin.rstrip("/").encode() for origin in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await refuse(send, refusal)
            return
        pins = self.pins
        epoch = pins.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            pins.leave(epoch)

    def refusal(self, scope: Scope) -> Refusal | None:
        """The answer that refuses this request before any route runs; None: let it in."""
        host = origin = site = content_type = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                site = value
            elif name == b"content-type":
                content_type = value
        hosts = self.hosts
        if (
            hosts is not None
            and host is not None
            and _requested_host(host) not in hosts
            and scope["path"] not in _OPEN_PATHS
        ):
            return _WRONG_HOST
        if (origin is not None or site == b"cross-site") and not self._origin_allowed(origin, host):
            return _CROSS_ORIGIN
        if content_type and scope["method"] == "POST" and not is_json(content_type):
            return _NOT_JSON
        return None

    def _origin_allowed(self, origin: bytes | None, host: bytes | None) -> bool:
        if origin is None:
            return False  # Sec-Fetch-Site: cross-site with no Origin to vouch for it
        if self.any_origin or origin in self.origins:
            return True
        # Same origin: the page was served by this very host (the Host check ran first).
        _, sep, authority = origin.partition(b"://")
        return bool(sep) and host is not None and authority.lower() == host.lower()


async def refuse(send: Send, refusal: Refusal) -> None:
    status, body = refusal
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
