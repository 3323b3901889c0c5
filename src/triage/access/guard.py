"""Access control: who is calling, what they may use, and whether they are within their limits.

Order of checks for a request (service.py): authenticate (401) -> authorize the model, every
group the plan may reach and the task (403) -> reserve the request's worst case against rpm,
tpm and the spend budgets (429), all before any upstream call. After the call the reservation
is settled to the actual tokens and cost. Keys are compared as SHA-256 digests; a key's secret
never leaves this module. The counters live in a `LimitStore` (state/), which outlives config
reloads and may be shared by the worker processes of a machine.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from triage.config.auth import AuthSettings, KeySpec
from triage.errors import AuthenticationFailed, PermissionDenied, RateLimited, StoreUnavailable
from triage.identity import ByIdentity
from triage.state.limits import Ask, LimitStore, MemoryLimits, Refusal, Reservation
from triage.state.redis_conn import StoreDown

log = logging.getLogger("triage.state")
_Limits = tuple[str, int | None, int | None, Decimal | None, Decimal | None]
StoreFailure = Callable[[str, str], None]  # (operation, policy)


def _limits_of(key: KeySpec) -> _Limits:
    budget = key.budget
    return (key.id, key.rpm, key.tpm, budget.daily_usd, budget.monthly_usd)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class BudgetExceeded(RateLimited):
    default_code = "budget_exceeded"


class TokensExceeded(RateLimited):
    default_code = "tokens_per_minute_exceeded"


class Guard:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        limits: LimitStore | None = None,
        wall_clock: Callable[[], float] = time.time,
        reachable: Callable[[str], Iterable[str]] | None = None,
        on_store_failure: StoreFailure = lambda operation, policy: None,
    ) -> None:
        self.settings = settings
        self.on_store_failure = on_store_failure
        self._by_id = {spec.id: spec for spec in settings.keys}
        self.wall_clock = wall_clock
        self.limits: LimitStore = limits if limits is not None else MemoryLimits()
        # One process's counters are called directly: no coroutine per reserve and settle.
        self._memory = self.limits if type(self.limits) is MemoryLimits else None  # not a subclass
        self._by_digest = {_key_digest(spec): spec for spec in settings.keys}
        # Bearer tokens already matched to a key: a hash costs more than the rest of the check.
        # Only valid tokens enter, so its size is bounded by the configured keys.
        self._known: dict[str, KeySpec] = {}
        self._limits: ByIdentity[KeySpec, _Limits] = ByIdentity(_limits_of)  # read once
        self._admin = _admin_digest(settings)
        self._allowed = {
            spec.id: _allowed_groups(spec, reachable) for spec in settings.keys if spec.models
        }

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def authenticate(self, authorization: str | None) -> KeySpec | None:
        """The caller's key, or None when no keys are configured (loopback-only mode)."""
        if not self.enabled:
            return None
        token = bearer(authorization)
        if token is None:
            raise AuthenticationFailed("missing API key: send `Authorization: Bearer <key>`")
        spec = self._known.get(token)
        if spec is None:
            spec = self._by_digest.get(digest(token))
            if spec is None:
                raise AuthenticationFailed("invalid API key")
            if len(self._known) < len(self._by_digest):
                self._known[token] = spec
        return spec

    def authenticate_admin(self, authorization: str | None) -> None:
        if self._admin is None:
            if self.enabled:
                raise PermissionDenied("admin endpoints need auth.admin_key to be configured")
            return
        token = bearer(authorization)
        if token is None or digest(token) != self._admin:
            raise AuthenticationFailed("missing or invalid admin key")

    def is_admin(self, authorization: str | None) -> bool:
        token = bearer(authorization)
        return self._admin is not None and token is not None and digest(token) == self._admin

    def admin_required(self) -> bool:
        return self._admin is not None

    def allowed_groups(self, key: KeySpec | None) -> frozenset[str] | None:
        """The model groups `key` may reach (fallbacks included); None: every group."""
        return None if key is None else self._allowed.get(key.id)

    def authorize(self, key: KeySpec | None, model: str, task: str | None) -> None:
        if key is None:
            return
        if key.models and model not in key.models:
            raise PermissionDenied(f"key `{key.id}` may not use model `{model}`", param="model")
        if key.tasks and task is not None and task not in key.tasks:
            raise PermissionDenied(f"key `{key.id}` may not send `{task}` requests")

    def ask(self, key: KeySpec, tokens: int, cost: Decimal) -> Ask:
        key_id, rpm, tpm, daily, monthly = self._limits.of(key)
        return Ask(key_id, tokens, cost, rpm, tpm, daily, monthly)

    async def reserve(self, ask: Ask) -> Reservation | None:
        """Hold `ask` against every limit of its key, or raise 429 naming the one it breaks.
        A shared store that cannot be reached refuses with 503 (a key that fails closed) or
        admits the request uncounted (None: a key that fails open)."""
        memory = self._memory
        try:
            if memory is not None:
                result = memory.take(ask, self.wall_clock())
            else:
                result = await self.limits.reserve(ask, self.wall_clock())
        except StoreDown as exc:
            spec = self._by_id.get(ask.key_id)
            policy = "fail_open" if spec is not None and spec.fails_open else "fail_closed"
            self._store_failed("reserve", policy, ask.key_id, exc)
            if policy == "fail_open":
                return None
            raise StoreUnavailable(
                "the shared state store is unreachable and this key's limits cannot be "
                "checked; retry shortly",
                retry_after=1.0,
            ) from None
        if isinstance(result, Refusal):
            error = {"daily": BudgetExceeded, "monthly": BudgetExceeded, "tpm": TokensExceeded}
            raise error.get(result.limit, RateLimited)(
                result.message, retry_after=result.retry_after
            )
        return result

    async def settle(self, reservation: Reservation | None, tokens: int, cost: Decimal) -> None:
        if reservation is None:
            return
        if self._memory is not None:  # it raises no StoreDown
            self._memory.release(reservation, tokens, cost, self.wall_clock())
            return
        try:
            await self.limits.settle(reservation, tokens, cost, self.wall_clock())
        except StoreDown as exc:  # its hold lapses after reservation_ttl; the ledger has it
            self._store_failed("settle", "fail_open", reservation.key_id, exc)

    def _store_failed(self, operation: str, policy: str, key_id: str, exc: StoreDown) -> None:
        self.on_store_failure(operation, policy)
        log.warning(
            "state store unreachable (%s) on %s for key %s: %s",
            exc,
            operation,
            key_id,
            "refused (fail_closed)" if policy == "fail_closed" else "served uncounted",
        )

    async def summary(self) -> list[dict[str, Any]]:
        now = self.wall_clock()
        out = []
        for spec in self.settings.keys:
            try:
                snap = await self.limits.snapshot(spec.id, now)
            except StoreDown as exc:
                self._store_failed("snapshot", "fail_closed", spec.id, exc)
                raise StoreUnavailable("the shared state store is unreachable") from None
            out.append(
                {
                    "id": spec.id,
                    "models": spec.models,
                    "tasks": spec.tasks,
                    "rpm": spec.rpm,
                    "tpm": spec.tpm,
                    "data_policy": spec.data_policy,
                    "budget": {
                        "daily_usd": _text(spec.budget.daily_usd),
                        "monthly_usd": _text(spec.budget.monthly_usd),
                    },
                    "spend": {
                        "today_usd": str(snap.spent_today),
                        "this_month_usd": str(snap.spent_this_month),
                        "reserved_usd": str(snap.reserved_usd),
                    },
                    "requests_last_minute": snap.requests_last_minute,
                    "tokens_last_minute": snap.tokens_last_minute,
                    "in_flight": snap.in_flight,
                }
            )
        return out


def limited(key: KeySpec | None) -> bool:
    """Whether `key` has any limit that a request must reserve against."""
    if key is None:
        return False
    budget = key.budget
    return not (
        key.rpm is None
        and key.tpm is None
        and budget.daily_usd is None
        and budget.monthly_usd is None
    )


def _allowed_groups(
    spec: KeySpec, reachable: Callable[[str], Iterable[str]] | None
) -> frozenset[str]:
    """The names a key lists, widened by every group its listed aliases route to."""
    groups: set[str] = set(spec.models)
    if reachable is not None:
        for name in spec.models:
            groups.update(reachable(name))
    return frozenset(groups)


def _key_digest(spec: KeySpec) -> str:
    if spec.key is not None:
        return digest(spec.key.get_secret_value())
    assert spec.key_sha256 is not None  # the schema requires one of the two
    return spec.key_sha256.lower()


def _admin_digest(settings: AuthSettings) -> str | None:
    if settings.admin_key is not None:
        return digest(settings.admin_key.get_secret_value())
    return settings.admin_key_sha256.lower() if settings.admin_key_sha256 else None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
