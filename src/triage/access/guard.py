"""Access control: who is calling, what they may use, and whether they are within their limits.

Order of checks for a request (service.py): authenticate (401) -> authorize model and task (403)
-> requests/tokens per minute (429 with Retry-After) -> spend budget (429 `budget_exceeded`),
all before any upstream call. Keys are compared as SHA-256 digests; a key's secret never leaves
this module. Per-minute windows and spend totals live here in memory (one replica); spend is
seeded from the usage ledger so a restart does not reset a budget.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from triage.config.auth import AuthSettings, KeySpec
from triage.errors import AuthenticationFailed, PermissionDenied, RateLimited

WINDOW = 60.0
SpendSince = Callable[[str, float], Decimal]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass
class _Usage:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    day: tuple[float, Decimal] | None = None
    month: tuple[float, Decimal] | None = None


class BudgetExceeded(RateLimited):
    default_code = "budget_exceeded"


class Guard:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        spend_since: SpendSince | None = None,
        wall_clock: Callable[[], float] = time.time,
        usage: dict[str, _Usage] | None = None,
    ) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        self.spend_since = spend_since
        self._by_digest = {_key_digest(spec): spec for spec in settings.keys}
        self._admin = _admin_digest(settings)
        # Kept across config reloads so limits and budgets do not reset.
        self.usage: dict[str, _Usage] = usage if usage is not None else {}

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def authenticate(self, authorization: str | None) -> KeySpec | None:
        """The caller's key, or None when no keys are configured (loopback-only mode)."""
        if not self.enabled:
            return None
        token = _bearer(authorization)
        if token is None:
            raise AuthenticationFailed("missing API key: send `Authorization: Bearer <key>`")
        spec = self._by_digest.get(digest(token))
        if spec is None:
            raise AuthenticationFailed("invalid API key")
        return spec

    def authenticate_admin(self, authorization: str | None) -> None:
        if self._admin is None:
            if self.enabled:
                raise PermissionDenied("admin endpoints need auth.admin_key to be configured")
            return
        token = _bearer(authorization)
        if token is None or digest(token) != self._admin:
            raise AuthenticationFailed("missing or invalid admin key")

    def admin_required(self) -> bool:
        return self._admin is not None

    def authorize(self, key: KeySpec | None, model: str, task: str | None) -> None:
        if key is None:
            return
        if key.models and model not in key.models:
            raise PermissionDenied(f"key `{key.id}` may not use model `{model}`", param="model")
        if key.tasks and task is not None and task not in key.tasks:
            raise PermissionDenied(f"key `{key.id}` may not send `{task}` requests")

    def admit(self, key: KeySpec | None, tokens: int) -> None:
        """Requests- and tokens-per-minute, counted before the call."""
        if key is None:
            return
        now = self.wall_clock()
        usage = self._usage(key.id, now)
        if key.rpm is not None and len(usage.requests) >= key.rpm:
            raise RateLimited(
                f"key `{key.id}` is over its {key.rpm} requests per minute",
                retry_after=_until(usage.requests[0] + WINDOW, now),
            )
        used = sum(n for _, n in usage.tokens)
        if key.tpm is not None and usage.tokens and used + tokens > key.tpm:
            raise RateLimited(
                f"key `{key.id}` is over its {key.tpm} tokens per minute",
                retry_after=_until(usage.tokens[0][0] + WINDOW, now),
            )
        usage.requests.append(now)

    def check_budget(self, key: KeySpec | None, estimate: Decimal) -> None:
        """Refuse a request whose estimated cost would take the key past a budget."""
        if key is None:
            return
        now = self.wall_clock()
        for label, limit, spent in (
            ("daily", key.budget.daily_usd, self._spent(key.id, now, "day")),
            ("monthly", key.budget.monthly_usd, self._spent(key.id, now, "month")),
        ):
            if limit is not None and spent + estimate > limit:
                raise BudgetExceeded(
                    f"key `{key.id}` would exceed its {label} budget of ${limit}",
                    retry_after=_until(_period_end(now, label), now),
                )

    def record(self, key_id: str | None, tokens: int, cost: Decimal) -> None:
        if key_id is None:
            return
        now = self.wall_clock()
        usage = self._usage(key_id, now)
        usage.tokens.append((now, tokens))
        for period in ("day", "month"):
            self._spent(key_id, now, period)  # make sure the period is seeded first
            start, spent = getattr(usage, period)
            setattr(usage, period, (start, spent + cost))

    def summary(self) -> list[dict[str, Any]]:
        now = self.wall_clock()
        return [
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
                    "today_usd": str(self._spent(spec.id, now, "day")),
                    "this_month_usd": str(self._spent(spec.id, now, "month")),
                },
                "requests_last_minute": len(self._usage(spec.id, now).requests),
            }
            for spec in self.settings.keys
        ]

    def _usage(self, key_id: str, now: float) -> _Usage:
        usage = self.usage.setdefault(key_id, _Usage())
        while usage.requests and usage.requests[0] <= now - WINDOW:
            usage.requests.popleft()
        while usage.tokens and usage.tokens[0][0] <= now - WINDOW:
            usage.tokens.popleft()
        return usage

    def _spent(self, key_id: str, now: float, period: str) -> Decimal:
        usage = self.usage.setdefault(key_id, _Usage())
        start = _period_start(now, period)
        current = getattr(usage, period)
        if current is None or current[0] != start:
            seeded = self.spend_since(key_id, start) if self.spend_since else Decimal(0)
            current = (start, seeded)
            setattr(usage, period, current)
        spent: Decimal = current[1]
        return spent


def _key_digest(spec: KeySpec) -> str:
    if spec.key is not None:
        return digest(spec.key.get_secret_value())
    assert spec.key_sha256 is not None  # the schema requires one of the two
    return spec.key_sha256.lower()


def _admin_digest(settings: AuthSettings) -> str | None:
    if settings.admin_key is not None:
        return digest(settings.admin_key.get_secret_value())
    return settings.admin_key_sha256.lower() if settings.admin_key_sha256 else None


def _until(moment: float, now: float) -> float:
    return float(max(1, math.ceil(moment - now)))


def _period_start(now: float, period: str) -> float:
    t = time.gmtime(now)
    day = 1 if period == "month" else t.tm_mday
    return float(calendar.timegm((t.tm_year, t.tm_mon, day, 0, 0, 0)))


def _period_end(now: float, label: str) -> float:
    t = time.gmtime(now)
    if label == "daily":
        return _period_start(now, "day") + 86400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
