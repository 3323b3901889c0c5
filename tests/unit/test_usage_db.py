"""The usage report aggregated in SQLite equals the one summed in Python over the same rows,
exactly (money as Decimal, medians of even and odd counts, groups with only errors), for every
dimension, window and key filter."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from triage.ledger import Ledger, LedgerRow
from triage.report import DIMENSIONS, summarize
from triage.usage_db import usage_report

T0 = 1_700_000_000.0


def _rows(count: int, seed: int) -> list[LedgerRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        task = rng.choice(["chat", "code", "broken"])
        rows.append(
            LedgerRow(
                ts=T0 + rng.uniform(-3 * 86400, 0),
                request_id=f"r{i}",
                key_id=rng.choice(["a", "b", None]),
                task=task,
                tier=rng.choice(["simple", "hard"]),
                route=rng.choice(["local", "cloud", ""]),
                deployment=rng.choice(["local-1", "cloud-1", ""]),
                # every request of task "broken" failed: its p50 is None
                status=502 if task == "broken" else rng.choice([200, 200, 200, 429]),
                prompt_tokens=rng.randint(0, 5000),
                completion_tokens=rng.randint(0, 900),
                usage_source="reported",
                cost_usd=Decimal(rng.randint(0, 10**9)) / Decimal(10**15),
                counterfactual_usd=Decimal(rng.randint(0, 10**6)) / Decimal(10**9),
                latency_s=rng.choice([0.5, 0.25, rng.random()]),
                ttft_s=None,
                stream=bool(i % 2),
                attempts=1,
                fallbacks=0,
            )
        )
    return rows


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("by", DIMENSIONS)
def test_sql_report_equals_the_python_one(tmp_path: Path, by: str, seed: int) -> None:
    rows = _rows(301 + seed, seed)
    path = tmp_path / "usage.db"
    with Ledger(path) as ledger:
        ledger.append_many(rows)
    for since in (None, T0 - 86400):
        for key in (None, "a", "nobody"):
            chosen = [r for r in rows if (since is None or r.ts >= since)]
            chosen = [r for r in chosen if key is None or r.key_id == key]
            expected = summarize(sorted(chosen, key=lambda r: r.ts), by=by)  # type: ignore[arg-type]
            got = usage_report(path, by=by, since=since, key_id=key)  # type: ignore[arg-type]
            assert got.to_json() == expected.to_json(), (since, key)


def test_an_empty_ledger_reports_zeroes(tmp_path: Path) -> None:
    Ledger(tmp_path / "usage.db").close()
    report = usage_report(tmp_path / "usage.db", by="task")
    assert report.groups == () and report.total.requests == 0
    assert report.total.p50_latency_s is None


def test_an_unknown_dimension_is_refused(tmp_path: Path) -> None:
    Ledger(tmp_path / "usage.db").close()
    with pytest.raises(ValueError, match="cannot group by"):
        usage_report(tmp_path / "usage.db", by="key")  # type: ignore[arg-type]
