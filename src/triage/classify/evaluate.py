"""Measuring a Classifier on labelled rows, and reading labelled JSONL files.

Owns the evaluation figures: accuracy, macro-F1 (averaged over the labels present in the gold
rows), heavy-tier recall (gold code + reasoning predicted in the heavy tier), the share of gold
light rows sent to the heavy tier, and per-call latency percentiles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triage.classify.classifier import Classifier
from triage.classify.taxonomy import DEFAULT_TIERS, HEAVY_TASKS, LIGHT_TASKS, TASKS, check_label

LabelStats = Mapping[str, float]


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

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "heavy_recall": self.heavy_recall,
            "light_to_heavy": self.light_to_heavy,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "per_label": {label: dict(stats) for label, stats in self.per_label.items()},
            "confusion": {gold: dict(row) for gold, row in self.confusion.items()},
        }

    def render(self) -> str:
        return render_report(self)


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _percentile(sorted_values: Sequence[int], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1000.0


def _label_stats(confusion: Mapping[str, Mapping[str, int]], label: str) -> dict[str, float]:
    support = sum(confusion[label].values())
    predicted = sum(confusion[gold][label] for gold in TASKS)
    correct = confusion[label][label]
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}


def evaluate(classifier: Classifier, rows: Sequence[tuple[str, str]]) -> EvalReport:
    """Classify every row (prompt, gold label) and summarise the results."""
    confusion = {gold: dict.fromkeys(TASKS, 0) for gold in TASKS}
    timings: list[int] = []
    clock = time.perf_counter_ns
    for text, gold in rows:
        check_label(gold)
        start = clock()
        predicted = classifier.classify_text(text).task
        timings.append(clock() - start)
        confusion[gold][predicted] += 1
    timings.sort()
    n = len(rows)
    per_label = {label: _label_stats(confusion, label) for label in TASKS}
    present = [label for label in TASKS if per_label[label]["support"]]
    heavy_gold = sum(sum(confusion[gold].values()) for gold in HEAVY_TASKS)
    light_gold = sum(sum(confusion[gold].values()) for gold in LIGHT_TASKS)
    heavy_pred = {gold: sum(confusion[gold][t] for t in HEAVY_TASKS) for gold in TASKS}
    return EvalReport(
        n=n,
        accuracy=sum(confusion[t][t] for t in TASKS) / n if n else 0.0,
        macro_f1=sum(per_label[t]["f1"] for t in present) / len(present) if present else 0.0,
        heavy_recall=_share(sum(heavy_pred[t] for t in HEAVY_TASKS), heavy_gold),
        light_to_heavy=_share(sum(heavy_pred[t] for t in LIGHT_TASKS), light_gold),
        p50_us=_percentile(timings, 0.5),
        p99_us=_percentile(timings, 0.99),
        per_label=per_label,
        confusion=confusion,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_report(report: EvalReport) -> str:
    """A plain-text table: headline figures, per-label scores and the confusion matrix."""
    labels = [
        t
        for t in TASKS
        if report.per_label[t]["support"] or any(report.confusion[g][t] for g in TASKS)
    ]
    lines = [
        f"n={report.n}  accuracy={report.accuracy:.3f}  macro-F1={report.macro_f1:.3f}",
        f"heavy recall={_fmt(report.heavy_recall)}  light->heavy={_fmt(report.light_to_heavy)}"
        f"  p50={report.p50_us:.1f}us  p99={report.p99_us:.1f}us",
        "",
        f"{'label':<17}{'prec':>7}{'recall':>8}{'f1':>7}{'support':>9}  tier",
    ]
    for label in labels:
        stats = report.per_label[label]
        lines.append(
            f"{label:<17}{stats['precision']:>7.3f}{stats['recall']:>8.3f}{stats['f1']:>7.3f}"
            f"{int(stats['support']):>9}  {DEFAULT_TIERS[label]}"
        )
    short = {label: label[:5] for label in labels}
    lines += ["", "confusion (rows gold, columns predicted)"]
    lines.append(" " * 17 + "".join(f"{short[t]:>7}" for t in labels))
    for gold in labels:
        row = "".join(f"{report.confusion[gold][t]:>7}" for t in labels)
        lines.append(f"{gold:<17}{row}")
    return "\n".join(lines)


def _row(line: str, where: str) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with 'prompt' and 'label'")
    prompt, label = record.get("prompt"), record.get("label")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(label, str):
        raise ValueError(f"{where}: 'label' must be a string")
    try:
        check_label(label)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return prompt, label


def read_jsonl(path: str | Path) -> list[tuple[str, str]]:
    """Rows of {"prompt", "label"}; a bad row raises ValueError naming its line number."""
    rows: list[tuple[str, str]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_row(line, f"{path}: line {number}"))
    return rows
