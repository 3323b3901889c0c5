"""The plain-text report of `triage eval`.

Owns the layout: headline figures, per-group figures (by `source_label` prefix), latency by
prompt length, the cost/quality curve of the heavy head, per-label scores and the confusion
matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from triage.classify.taxonomy import DEFAULT_TIERS, TASKS

if TYPE_CHECKING:
    from triage.classify.evaluate import EvalReport


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _groups(report: EvalReport) -> list[str]:
    if not report.groups:
        return []
    lines = [
        "",
        "by source_label prefix",
        f"{'group':<22}{'n':>6}{'acc':>7}{'mF1':>7}{'heavyR':>8}{'l->h':>7}{'ECE':>7}",
    ]
    for name, group in report.groups.items():
        lines.append(
            f"{name[:21]:<22}{group.n:>6}{group.accuracy:>7.3f}{group.macro_f1:>7.3f}"
            f"{_fmt(group.heavy_recall):>8}{_fmt(group.light_to_heavy):>7}{group.ece:>7.3f}"
        )
    return lines


def _latency(report: EvalReport) -> list[str]:
    lines = [
        "",
        "latency by prompt length (chars)",
        f"{'chars':<14}{'n':>6}{'p50us':>9}{'p99us':>9}",
    ]
    for name, (n, p50, p99) in report.latency.items():
        lines.append(f"{name:<14}{n:>6}{p50:>9.1f}{p99:>9.1f}")
    return lines


def _curve(report: EvalReport) -> list[str]:
    lines = [
        "",
        f"cost/quality curve (heavy head; shipped threshold {report.heavy_threshold:.2f}; "
        "1.00 = top task only)",
        f"{'threshold':<11}{'sent heavy':>11}{'heavy recall':>14}{'light->heavy':>14}",
    ]
    for threshold, share, recall, wasted in report.curve:
        lines.append(f"{threshold:<11.2f}{share:>11.3f}{_fmt(recall):>14}{_fmt(wasted):>14}")
    return lines


def _labels(report: EvalReport) -> list[str]:
    labels = [
        t
        for t in TASKS
        if report.per_label[t]["support"] or any(report.confusion[g][t] for g in TASKS)
    ]
    lines = ["", f"{'label':<17}{'prec':>7}{'recall':>8}{'f1':>7}{'support':>9}  tier"]
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
    return lines


def render_report(report: EvalReport) -> str:
    """A plain-text report of every figure."""
    lines = [
        f"n={report.n}  accuracy={report.accuracy:.3f}  macro-F1={report.macro_f1:.3f}"
        f"  ECE={report.ece:.3f}",
        f"heavy recall={_fmt(report.heavy_recall)}  light->heavy={_fmt(report.light_to_heavy)}"
        f"  p50={report.p50_us:.1f}us  p99={report.p99_us:.1f}us",
    ]
    lines += _groups(report) + _latency(report) + _curve(report) + _labels(report)
    return "\n".join(lines)
