"""One ledger row: what a request cost and where it went, the same on every backend.

`COLUMNS` is the ``usage`` table's shape in SQLite's words; each backend maps the kinds to its
own types. `ADDED` lists the columns added after the first version: a backend adds any that an
older table lacks when it opens it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

SCHEMA_VERSION = 2  # 2: the `error` column (what failed); version 1 tables gain it on open

COLUMNS = (
    ("ts", "REAL NOT NULL"),
    ("request_id", "TEXT NOT NULL"),
    ("key_id", "TEXT"),
    ("task", "TEXT NOT NULL"),
    ("tier", "TEXT NOT NULL"),
    ("route", "TEXT NOT NULL"),
    ("deployment", "TEXT NOT NULL"),
    ("status", "INTEGER NOT NULL"),
    ("prompt_tokens", "INTEGER NOT NULL"),
    ("completion_tokens", "INTEGER NOT NULL"),
    ("usage_source", "TEXT NOT NULL"),
    ("cost_usd", "TEXT NOT NULL"),
    ("counterfactual_usd", "TEXT NOT NULL"),
    ("latency_s", "REAL NOT NULL"),
    ("ttft_s", "REAL"),
    ("stream", "INTEGER NOT NULL"),
    ("attempts", "INTEGER NOT NULL"),
    ("fallbacks", "INTEGER NOT NULL"),
    ("error", "TEXT NOT NULL DEFAULT ''"),
)
# Columns added after version 1, added in place to an older table when it is opened.
ADDED = (("error", "TEXT NOT NULL DEFAULT ''"),)
FIELDS = tuple(name for name, _ in COLUMNS)  # the order of LedgerRow's fields (a test pins it)
MONEY = ("cost_usd", "counterfactual_usd")


@dataclass(frozen=True, init=False)
class LedgerRow:
    """One request as the ledger records it. ``route`` and ``deployment`` are where the last
    attempt went ("" when none was made); ``error`` is the failure's kind ("" when it
    succeeded; see ``triage.errors.error_kind``)."""

    ts: float
    request_id: str
    key_id: str | None
    task: str
    tier: str
    route: str
    deployment: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    cost_usd: Decimal
    counterfactual_usd: Decimal
    latency_s: float
    ttft_s: float | None
    stream: bool
    attempts: int
    fallbacks: int
    error: str = ""

    def __init__(  # the fields in order: what dataclass's __init__ would take
        self,
        ts: float,
        request_id: str,
        key_id: str | None,
        task: str,
        tier: str,
        route: str,
        deployment: str,
        status: int,
        prompt_tokens: int,
        completion_tokens: int,
        usage_source: str,
        cost_usd: Decimal,
        counterfactual_usd: Decimal,
        latency_s: float,
        ttft_s: float | None,
        stream: bool,
        attempts: int,
        fallbacks: int,
        error: str = "",
    ) -> None:
        # One dict set at once: a frozen dataclass's own __init__ calls object.__setattr__ once
        # a field, ~3 of the 4.6 µs a row took to build (one per request).
        _check_money(cost_usd, counterfactual_usd)
        values = {
            "ts": ts,
            "request_id": request_id,
            "key_id": key_id,
            "task": task,
            "tier": tier,
            "route": route,
            "deployment": deployment,
            "status": status,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "usage_source": usage_source,
            "cost_usd": cost_usd,
            "counterfactual_usd": counterfactual_usd,
            "latency_s": latency_s,
            "ttft_s": ttft_s,
            "stream": stream,
            "attempts": attempts,
            "fallbacks": fallbacks,
            "error": error,
        }
        object.__setattr__(self, "__dict__", values)


def _check_money(cost: object, counterfactual: object) -> None:
    for name, amount in zip(MONEY, (cost, counterfactual), strict=True):
        # A float here would be stored inexactly and break every later sum.
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise TypeError(f"LedgerRow.{name} must be a finite Decimal, got {amount!r}")


class LedgerUnavailable(RuntimeError):
    """A networked ledger could not be reached or used (the message names no secret)."""


class LedgerBusy(RuntimeError):
    """The ledger file is locked by another process's transaction right now: nothing of the
    batch was written, and the same rows may be tried again later."""


def values_of(row: LedgerRow) -> list[Any]:
    # Read field by field: dataclasses.astuple deep-copies every value (~20 µs a row).
    return [getattr(row, name) for name in FIELDS]
