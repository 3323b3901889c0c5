"""Usage aggregation for ``triage report`` and ``GET /v1/triage/usage``: pure, over ledger rows.

Owns grouping (by task, route, deployment, UTC day or tier), the per-group figures (requests,
errors, tokens, cost, would-be cost, savings, p50 latency), their JSON form (money as exact
decimal strings), the fixed-width table, and parsing of ``--since`` values.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from triage.ledger import LedgerRow

Dimension = Literal["task", "route", "deployment", "day", "tier"]
DIMENSIONS: tuple[Dimension, ...] = ("task", "route", "deployment", "day", "tier")
TOTAL_LABEL = "TOTAL"

_ZERO = Decimal(0)
_PCT_QUANTUM = Decimal("0.1")
_TABLE_USD_QUANTUM = Decimal("1E-6")  # per-request local costs are millionths of a dollar
_HEADERS = (
    "requests",
    "errors",
    "tokens in",
    "tokens out",
    "cost $",
    "would-be $",
    "saved $",
    "saved %",
    "p50 ms",
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class GroupStats:
    """The figures of one group (or of the total line).

    ``p50_latency_s`` is over successful requests only: fast rejections (401, 429) would
    otherwise make the routes look quicker than they are. None when there were none.
    """

    group: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    counterfactual_usd: Decimal
    p50_latency_s: float | None

    @property
    def savings_usd(self) -> Decimal:
        """Would-be cost minus actual cost; negative when routing cost more (kept, not clamped)."""
        return self.counterfactual_usd - self.cost_usd

    @property
    def savings_pct(self) -> Decimal | None:
        """Savings as a percentage of the would-be cost (one decimal); None when that is 0."""
        if self.counterfactual_usd == 0:
            return None
        pct = self.savings_usd * 100 / self.counterfactual_usd
        return pct.quantize(_PCT_QUANTUM, rounding=ROUND_HALF_EVEN)

    def to_json(self) -> dict[str, Any]:
        pct = self.savings_pct
        p50 = self.p50_latency_s
        return {
            "group": self.group,
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": _exact(self.cost_usd),
            "counterfactual_usd": _exact(self.counterfactual_usd),
            "savings_usd": _exact(self.savings_usd),
            "savings_pct": None if pct is None else _exact(pct),
            "p50_latency_ms": None if p50 is None else round(p50 * 1000, 1),
        }

    def cells(self) -> list[str]:
        """The table row, group first (an empty group, e.g. no route, shows as "-")."""
        pct = self.savings_pct
        p50 = self.p50_latency_s
        return [
            self.group or "-",
            str(self.requests),
            str(self.errors),
            str(self.prompt_tokens),
            str(self.completion_tokens),
            _table_usd(self.cost_usd),
            _table_usd(self.counterfactual_usd),
            _table_usd(self.savings_usd),
            "-" if pct is None else format(pct, "f"),
            "-" if p50 is None else str(round(p50 * 1000)),
        ]


@dataclass(frozen=True)
class Report:
    """Groups sorted by key (days chronologically), plus the total over every row."""

    by: Dimension
    groups: tuple[GroupStats, ...]
    total: GroupStats

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "groups": [group.to_json() for group in self.groups],
            "total": self.total.to_json(),
        }

    def render(self) -> str:
        """A fixed-width table: a header, a rule, one line per group, a rule, the total."""
        header = [self.by, *_HEADERS]
        body = [group.cells() for group in self.groups]
        total = self.total.cells()
        widths = [max(len(row[i]) for row in (header, *body, total)) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
            return "  ".join((first, *rest)).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return "\n".join([line(header), rule, *map(line, body), rule, line(total)]) + "\n"


def _exact(amount: Decimal) -> str:
    return format(amount, "f")


def _table_usd(amount: Decimal) -> str:
    return format(amount.quantize(_TABLE_USD_QUANTUM, rounding=ROUND_HALF_EVEN), "f")


def _day(row: LedgerRow) -> str:
    return datetime.fromtimestamp(row.ts, UTC).date().isoformat()


_KEYS: dict[Dimension, Callable[[LedgerRow], str]] = {
    "task": lambda row: row.task,
    "route": lambda row: row.route,
    "deployment": lambda row: row.deployment,
    "day": _day,
    "tier": lambda row: row.tier,
}


def _stats(group: str, rows: Sequence[LedgerRow]) -> GroupStats:
    latencies = [row.latency_s for row in rows if row.status < 400]
    return GroupStats(
        group=group,
        requests=len(rows),
        errors=sum(1 for row in rows if row.status >= 400),
        prompt_tokens=sum(row.prompt_tokens for row in rows),
        completion_tokens=sum(row.completion_tokens for row in rows),
        cost_usd=sum((row.cost_usd for row in rows), _ZERO),
        counterfactual_usd=sum((row.counterfactual_usd for row in rows), _ZERO),
        p50_latency_s=statistics.median(latencies) if latencies else None,
    )


def summarize(rows: Sequence[LedgerRow], *, by: Dimension) -> Report:
    """Aggregate ledger rows by one dimension; "day" is the UTC calendar day of ``ts``."""
    if by not in _KEYS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DIMENSIONS)}")
    key = _KEYS[by]
    grouped: dict[str, list[LedgerRow]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    groups = tuple(_stats(name, grouped[name]) for name in sorted(grouped))
    return Report(by=by, groups=groups, total=_stats(TOTAL_LABEL, rows))


def parse_since(text: str, *, now: float) -> float:
    """Epoch seconds for "90s", "30m", "24h", "7d", "2w" (before ``now``) or an ISO date/time.

    An ISO value without a timezone is taken as UTC, matching the report's UTC days.
    """
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"invalid since value {text!r}: expected a duration such as 30m, 24h or 7d, "
            "or an ISO date such as 2025-01-31 or 2025-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
