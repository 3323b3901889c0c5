"""Usage aggregated inside the ledger (its SQLite file, or its PostgreSQL table): the same
`Report` as `report.summarize`, computed with GROUP BY on a connection of its own.

Owns the report queries. They never load the rows into Python (a ledger of millions of rows
costs a few scans in SQLite's C code) and they never touch the serving ledger's connection,
whose lock the request path takes; a server runs them in a thread, off the event loop.

Money stays exact: PostgreSQL sums NUMERIC exactly; SQLite would add the TEXT amounts as binary
floats, so there each group's amounts come back as (amount, count) pairs, summed as `Decimal`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from triage.report import DIMENSIONS, TOTAL_LABEL, Dimension, GroupStats, Report

_GROUP_EXPR: dict[Dimension, str] = {
    "task": "task",
    "route": "route",
    "deployment": "deployment",
    "tier": "tier",
    "day": "date(ts, 'unixepoch')",  # the UTC calendar day, as report._day
}
_COUNTS = (
    "SELECT {g} AS g, COUNT(*), SUM(status >= 400), SUM(prompt_tokens), "
    "SUM(completion_tokens) FROM usage WHERE {where} GROUP BY g"
)
_AMOUNTS = "SELECT {g} AS g, {col}, COUNT(*) FROM usage WHERE {where} GROUP BY g, {col}"
# The median of each group's successful latencies: the middle row, or the mean of the two.
_MEDIAN = (
    "SELECT g, AVG(latency_s) FROM (SELECT {g} AS g, latency_s, "
    "ROW_NUMBER() OVER (PARTITION BY {g} ORDER BY latency_s) AS rn, "
    "COUNT(*) OVER (PARTITION BY {g}) AS n FROM usage WHERE {where} AND status < 400) "
    "WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY g"
)

_TOTAL_MEDIAN = (
    "SELECT AVG(latency_s) FROM (SELECT latency_s FROM usage WHERE {where} AND status < 400 "
    "ORDER BY latency_s LIMIT ? OFFSET ?)"
)


@contextmanager
def _reader(path: str | Path) -> Iterator[sqlite3.Connection]:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        yield conn


def usage_report(
    path: str | Path,
    *,
    by: Dimension,
    since: float | None = None,
    key_id: str | None = None,
) -> Report:
    """The report over the ledger at `path`: rows with `ts >= since`, only `key_id`'s when
    given (every key's, and keyless requests, when None)."""
    if by not in _GROUP_EXPR:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DIMENSIONS)}")
    # Without a window every row counts: a plain scan beats walking the ts index.
    where, params = ("1", ()) if since is None else ("ts >= ?", (since,))
    if key_id is not None:
        where, params = f"{where} AND key_id = ?", (*params, key_id)
    with _reader(path) as conn:
        groups = _figures(conn, _GROUP_EXPR[by], where, params)
        stats = tuple(groups[name] for name in sorted(groups))
        succeeded = sum(g.requests - g.errors for g in stats)
        middle = (2 - succeeded % 2, (succeeded - 1) // 2)  # LIMIT, OFFSET of the middle rows
        (median,) = conn.execute(_TOTAL_MEDIAN.format(where=where), (*params, *middle)).fetchone()
    return Report(by=by, groups=stats, total=_total(stats, median if succeeded else None))


def _figures(
    conn: sqlite3.Connection, group: str, where: str, params: tuple[Any, ...]
) -> dict[str, GroupStats]:
    def run(sql: str, **names: str) -> list[Any]:
        return conn.execute(sql.format(g=group, where=where, **names), params).fetchall()

    costs = _sums(run(_AMOUNTS, col="cost_usd"))
    would_be = _sums(run(_AMOUNTS, col="counterfactual_usd"))
    medians = {str(g): float(m) for g, m in run(_MEDIAN)}
    out: dict[str, GroupStats] = {}
    for g, requests, errors, prompt, completion in run(_COUNTS):
        name = str(g)
        out[name] = GroupStats(
            group=name,
            requests=int(requests),
            errors=int(errors or 0),
            prompt_tokens=int(prompt or 0),
            completion_tokens=int(completion or 0),
            cost_usd=costs.get(name, Decimal(0)),
            counterfactual_usd=would_be.get(name, Decimal(0)),
            p50_latency_s=medians.get(name),
        )
    return out


def _sums(rows: list[Any]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for g, amount, count in rows:
        name = str(g)
        out[name] = out.get(name, Decimal(0)) + Decimal(amount) * count
    return out


def _total(groups: tuple[GroupStats, ...], median: float | None) -> GroupStats:
    return GroupStats(
        TOTAL_LABEL,
        sum(g.requests for g in groups),
        sum(g.errors for g in groups),
        sum(g.prompt_tokens for g in groups),
        sum(g.completion_tokens for g in groups),
        sum((g.cost_usd for g in groups), Decimal(0)),
        sum((g.counterfactual_usd for g in groups), Decimal(0)),
        None if median is None else float(median),
    )


# PostgreSQL: the same figures; NUMERIC sums are exact and percentile_cont(0.5) is the median
# (the middle value, or the mean of the two middle ones).
_PG_GROUP_EXPR: dict[Dimension, str] = {
    **_GROUP_EXPR,
    "day": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_PG_FIGURES = (
    "SELECT {g} AS g, COUNT(*), COUNT(*) FILTER (WHERE status >= 400), "
    "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
    "COALESCE(SUM(cost_usd), 0), COALESCE(SUM(counterfactual_usd), 0), "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s) FILTER (WHERE status < 400) "
    "FROM {table} WHERE {where} GROUP BY g"
)
_PG_MEDIAN = (
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s) FROM {table} "
    "WHERE {where} AND status < 400"
)


def postgres_usage_report(
    conn: Any, *, by: Dimension, since: float | None = None, key_id: str | None = None
) -> Report:
    """The report over the PostgreSQL ledger on `conn` (a psycopg connection)."""
    from triage.ledger.postgres import TABLE

    if by not in _PG_GROUP_EXPR:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(DIMENSIONS)}")
    clauses: list[str] = ["TRUE"]
    params: list[float | str] = []
    if since is not None:
        clauses.append("ts >= %s")
        params.append(since)
    if key_id is not None:
        clauses.append("key_id = %s")
        params.append(key_id)
    where = " AND ".join(clauses)
    sql = _PG_FIGURES.format(g=_PG_GROUP_EXPR[by], table=TABLE, where=where)
    groups = [_pg_group(record) for record in conn.execute(sql.encode(), params).fetchall()]
    stats = tuple(sorted(groups, key=lambda g: g.group))
    median_sql = _PG_MEDIAN.format(table=TABLE, where=where)
    (median,) = conn.execute(median_sql.encode(), params).fetchone()
    return Report(by=by, groups=stats, total=_total(stats, median))


def _pg_group(record: tuple[Any, ...]) -> GroupStats:
    g, requests, errors, prompt, completion, cost, would_be, median = record
    return GroupStats(
        group=str(g),
        requests=int(requests),
        errors=int(errors),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cost_usd=Decimal(cost),
        counterfactual_usd=Decimal(would_be),
        p50_latency_s=None if median is None else float(median),
    )
