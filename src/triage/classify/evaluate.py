"""Measuring a Classifier on labelled rows, and reading labelled JSONL files.

Owns running a classifier over labelled rows (single prompts or whole conversations), grouping
the outcomes (per `source_label` prefix, per prompt length) and the report `triage eval` prints.
The measures themselves live in figures.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from triage.classify.classifier import Classifier
from triage.classify.figures import (
    CURVE_THRESHOLDS,
    Outcome,
    Scores,
    confusion_of,
    cost_curve,
    label_stats,
    latency_by_length,
    percentile,
    scores,
)
from triage.classify.taxonomy import TASKS, check_label

LabelStats = Mapping[str, float]


class Row(NamedTuple):
    """A labelled row: a prompt or a conversation (`messages`), its label and its group."""

    prompt: str
    label: str
    messages: Sequence[Mapping[str, Any]] | None = None
    group: str = ""


@dataclass(frozen=True)
class EvalReport:
    """Figures for one evaluation run. heavy_recall / light_to_heavy are None without such rows."""

    n: int
    accuracy: float
    macro_f1: float
    heavy_recall: float | None
    light_to_heavy: float | None
    p50_us: float
    p99_us: float
    per_label: Mapping[str, LabelStats]
    confusion: Mapping[str, Mapping[str, int]]
    ece: float = 0.0
    groups: Mapping[str, Scores] = field(default_factory=dict)
    latency: Mapping[str, tuple[int, float, float]] = field(default_factory=dict)
    curve: Sequence[tuple[float, float, float | None, float | None]] = ()
    heavy_threshold: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "heavy_recall": self.heavy_recall,
            "light_to_heavy": self.light_to_heavy,
            "ece": self.ece,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "per_label": {label: dict(stats) for label, stats in self.per_label.items()},
            "confusion": {gold: dict(row) for gold, row in self.confusion.items()},
            "groups": {name: vars(group) for name, group in self.groups.items()},
            "latency_by_length": {
                name: {"n": n, "p50_us": p50, "p99_us": p99}
                for name, (n, p50, p99) in self.latency.items()
            },
            "heavy_threshold": self.heavy_threshold,
            "cost_curve": [
                {"threshold": t, "heavy_share": s, "heavy_recall": r, "light_to_heavy": w}
                for t, s, r, w in self.curve
            ],
        }

    def render(self) -> str:
        from triage.classify.render import render_report

        return render_report(self)


def _classify_row(classifier: Classifier, row: Row | tuple[str, str]) -> Outcome:
    clock = time.perf_counter_ns
    if isinstance(row, Row) and row.messages is not None:
        messages = row.messages
        start = clock()
        result = classifier.classify(messages)
    else:
        start = clock()
        result = classifier.classify_text(row[0])
    nanos = clock() - start
    probabilities = [result.probabilities.get(task, 0.0) for task in TASKS]
    return Outcome(row[1], result.task, probabilities, nanos, len(row[0]))


def evaluate(classifier: Classifier, rows: Sequence[Row | tuple[str, str]]) -> EvalReport:
    """Classify every row and summarise the results."""
    outcomes = []
    for row in rows:
        check_label(row[1])
        outcomes.append(_classify_row(classifier, row))
    overall = scores(outcomes)
    confusion = confusion_of(outcomes)
    timings = sorted(o.nanos for o in outcomes)
    grouped: dict[str, list[Outcome]] = {}
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(row, Row) and row.group:
            grouped.setdefault(row.group, []).append(outcome)
    return EvalReport(
        n=overall.n,
        accuracy=overall.accuracy,
        macro_f1=overall.macro_f1,
        heavy_recall=overall.heavy_recall,
        light_to_heavy=overall.light_to_heavy,
        p50_us=percentile(timings, 0.5),
        p99_us=percentile(timings, 0.99),
        per_label={label: label_stats(confusion, label) for label in TASKS},
        confusion=confusion,
        ece=overall.ece,
        groups={name: scores(members) for name, members in sorted(grouped.items())},
        latency=latency_by_length(outcomes),
        # The shipped point is on the curve too, so the operator sees where they stand.
        curve=cost_curve(outcomes, sorted({*CURVE_THRESHOLDS, classifier.heavy_threshold})),
        heavy_threshold=classifier.heavy_threshold,
    )


def _record(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with 'prompt' and 'label'")
    label = record.get("label")
    if not isinstance(label, str):
        raise ValueError(f"{where}: 'label' must be a string")
    try:
        check_label(label)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return record


def _messages(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value):
        raise ValueError(f"{where}: every message needs a 'role'")
    return value


def _last_user(messages: Sequence[Mapping[str, Any]]) -> str:
    from triage.classify.prompt import content_text

    users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def _row(line: str, where: str) -> Row:
    record = _record(line, where)
    group = str(record.get("source_label") or "").split(":", 1)[0]
    if "messages" in record and "prompt" not in record:
        messages = _messages(record["messages"], where)
        return Row(_last_user(messages), record["label"], messages, group)
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: 'prompt' must be a non-empty string")
    return Row(prompt, record["label"], None, group)


def read_rows(path: str | Path) -> list[Row]:
    """Rows of {"prompt" or "messages", "label", optional "source_label"}; a bad row raises
    ValueError naming its line number; other fields are ignored."""
    rows: list[Row] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_row(line, f"{path}: line {number}"))
    return rows


def read_jsonl(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, label) pairs, for training; a conversation row gives its last user turn."""
    return [(row.prompt, row.label) for row in read_rows(path) if row.prompt.strip()]
