"""Who is calling an endpoint that is not a model call, and what that caller may see.

With client keys configured (auth.keys), such endpoints take a client key or the admin key
(401 otherwise); a keyless server (loopback only) is open, as its model endpoints are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from triage.api.deps import state
from triage.config.auth import KeySpec
from triage.errors import AuthenticationFailed, TriageError
from triage.runtime import Runtime


@dataclass(frozen=True)
class Caller:
    """A client key (`key`), or the admin / anyone on a keyless server (`key` None)."""

    key: KeySpec | None
    admin: bool


def caller(request: Request) -> Caller:
    runtime = state(request).runtime
    guard = runtime.guard
    authorization = request.headers.get("authorization")
    if not guard.enabled:
        return Caller(None, admin=True)
    try:
        return Caller(guard.authenticate(authorization), admin=False)
    except AuthenticationFailed:
        if is_admin(runtime, authorization):
            return Caller(None, admin=True)
        raise


def is_admin(runtime: Runtime, authorization: str | None) -> bool:
    """The admin key, or anyone on a keyless server that has none (everything is open there)."""
    try:
        runtime.guard.authenticate_admin(authorization)
    except TriageError:
        return False
    return True


def visible_models(names: Iterable[str], key: KeySpec | None) -> list[str]:
    """The model names (groups and aliases) `key` may ask for: its allow-list, or all."""
    if key is None or not key.models:
        return list(names)
    allowed = set(key.models)
    return [name for name in names if name in allowed]
