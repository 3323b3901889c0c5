"""Usage report: grouping, totals, savings, the table, and --since parsing."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from triage.ledger import LedgerRow
from triage.report import parse_since, summarize

DAY1 = datetime(2025, 1, 31, 23, 0, tzinfo=UTC).timestamp()
DAY2 = datetime(2025, 2, 1, 1, 0, tzinfo=UTC).timestamp()


def make_row(**changes: Any) -> LedgerRow:
    row = LedgerRow(
        ts=DAY1,
        request_id="r",
        key_id="k",
        task="code",
        tier="local",
        route="coder",
        deployment="ollama-qwen",
        status=200,
        prompt_tokens=100,
        completion_tokens=50,
        usage_source="upstream",
        cost_usd=Decimal("0.001"),
        counterfactual_usd=Decimal("0.004"),
        latency_s=0.2,
        ttft_s=None,
        stream=False,
        attempts=1,
        fallbacks=0,
    )
    return dataclasses.replace(row, **changes)


ROWS = [
    make_row(latency_s=0.1),
    make_row(latency_s=0.3),
    make_row(status=502, latency_s=0.001, cost_usd=Decimal(0), prompt_tokens=0),
    make_row(
        task="chat",
        tier="cloud",
        route="gpt",
        deployment="openai",
        ts=DAY2,
        cost_usd=Decimal("0.0075"),
        counterfactual_usd=Decimal("0.0025"),
        latency_s=1.0,
    ),
]


def test_groups_by_task_with_totals_and_savings() -> None:
    report = summarize(ROWS, by="task")
    chat, code = report.groups
    assert (code.group, code.requests, code.errors) == ("code", 3, 1)
    assert (code.prompt_tokens, code.completion_tokens) == (200, 150)
    assert code.cost_usd == Decimal("0.002")
    assert code.counterfactual_usd == Decimal("0.012")
    assert code.savings_usd == Decimal("0.010")
    assert code.savings_pct == Decimal("83.3")
    # The 502's 1 ms does not drag the median down: p50 is over successes.
    assert code.p50_latency_s == pytest.approx(0.2)
    # A route dearer than the reference keeps its negative saving.
    assert chat.savings_usd == Decimal("-0.0050")
    assert chat.savings_pct == Decimal("-200.0")
    total = report.total
    assert (total.group, total.requests, total.errors) == ("TOTAL", 4, 1)
    assert total.cost_usd == Decimal("0.0095")
    assert total.counterfactual_usd == Decimal("0.0145")
    assert total.savings_pct == Decimal("34.5")


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("route", ["coder", "gpt"]),
        ("deployment", ["ollama-qwen", "openai"]),
        ("tier", ["cloud", "local"]),
        ("day", ["2025-01-31", "2025-02-01"]),
    ],
)
def test_groups_by_each_dimension(by: Any, groups: list[str]) -> None:
    assert [group.group for group in summarize(ROWS, by=by).groups] == groups


def test_an_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot group by"):
        summarize(ROWS, by="colour")  # type: ignore[arg-type]


def test_json_has_money_as_exact_strings() -> None:
    data = summarize(ROWS, by="tier").to_json()
    assert data["by"] == "tier"
    cloud = data["groups"][0]
    assert cloud["cost_usd"] == "0.0075"
    assert cloud["savings_usd"] == "-0.0050"
    assert cloud["savings_pct"] == "-200.0"
    assert cloud["p50_latency_ms"] == 1000.0
    assert data["total"]["counterfactual_usd"] == "0.0145"
    assert data["total"]["requests"] == 4


def test_no_would_be_cost_means_no_savings_percentage() -> None:
    report = summarize([make_row(counterfactual_usd=Decimal(0), status=500)], by="task")
    assert report.total.savings_pct is None
    assert report.total.p50_latency_s is None
    assert report.to_json()["total"]["savings_pct"] is None


def test_render_has_the_header_groups_and_totals() -> None:
    text = summarize(ROWS, by="task").render()
    lines = text.splitlines()
    assert lines[0].split() == [
        "task",
        "requests",
        "errors",
        "tokens",
        "in",
        "tokens",
        "out",
        "cost",
        "$",
        "would-be",
        "$",
        "saved",
        "$",
        "saved",
        "%",
        "p50",
        "ms",
    ]
    assert lines[-1].split() == [
        "TOTAL",
        "4",
        "1",
        "300",
        "200",
        "0.009500",
        "0.014500",
        "0.005000",
        "34.5",
        "300",
    ]
    assert lines[2].split()[0] == "chat"
    # Fixed width: every line of the table lines up.
    assert len({len(line) for line in (lines[1], lines[-2])}) == 1


def test_render_of_no_rows_still_has_a_total() -> None:
    lines = summarize([], by="day").render().splitlines()
    assert lines[0].startswith("day")
    assert lines[-1].split() == ["TOTAL", "0", "0", "0", "0", "0.000000", "0.000000"] + [
        "0.000000",
        "-",
        "-",
    ]


NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - 86400),
        ("30m", NOW - 1800),
        ("7d", NOW - 7 * 86400),
        (" 90S ", NOW - 90),
        ("1.5h", NOW - 5400),
        ("2w", NOW - 14 * 86400),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC).timestamp()),
        ("2025-01-31T12:00:00Z", datetime(2025, 1, 31, 12, tzinfo=UTC).timestamp()),
        ("2025-01-31T12:00:00+02:00", datetime(2025, 1, 31, 10, tzinfo=UTC).timestamp()),
    ],
)
def test_parse_since_accepts_durations_and_iso_dates(text: str, expected: float) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset")
def test_parse_since_reads_a_naive_iso_date_as_utc(far_from_utc: None) -> None:
    assert parse_since("2025-01-31", now=NOW) == datetime(2025, 1, 31, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("text", ["", "24", "yesterday", "-5m", "5y", "2025-13-01", "h"])
def test_parse_since_rejects_nonsense_clearly(text: str) -> None:
    with pytest.raises(ValueError, match="invalid since value"):
        parse_since(text, now=NOW)
