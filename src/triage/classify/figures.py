"""The figures of an evaluation, computed from per-row outcomes.

Owns the measures `triage eval` reports: accuracy, macro-F1 (over the labels present in the
gold rows), heavy recall (gold code + reasoning sent to the heavy tier), light->heavy (gold light
rows sent there), expected calibration error, latency percentiles by prompt length, and the
cost/quality curve of the heavy head (for each threshold: share of traffic sent heavy against
heavy recall), so an operator can pick a point instead of taking ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from triage.classify.taxonomy import HEAVY_TASKS, LIGHT_TASKS, TASKS

HEAVY = tuple(index for index, task in enumerate(TASKS) if task in HEAVY_TASKS)
ECE_BINS = 10
# Prompt-length buckets (characters) for latency: upper bounds, the last one open.
LENGTH_BUCKETS = (100, 500, 2000, 8000, 16384)
CURVE_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 1.0)


class Outcome(NamedTuple):
    """One classified row: gold and predicted task, the probabilities, cost and size."""

    gold: str
    task: str
    probabilities: Sequence[float]
    nanos: int
    chars: int


@dataclass(frozen=True)
class Scores:
    """Headline figures over a set of outcomes; None where the set has no such rows."""

    n: int
    accuracy: float
    macro_f1: float
    heavy_recall: float | None
    light_to_heavy: float | None
    ece: float


def confusion_of(outcomes: Sequence[Outcome]) -> dict[str, dict[str, int]]:
    confusion = {gold: dict.fromkeys(TASKS, 0) for gold in TASKS}
    for outcome in outcomes:
        confusion[outcome.gold][outcome.task] += 1
    return confusion


def label_stats(confusion: Mapping[str, Mapping[str, int]], label: str) -> dict[str, float]:
    support = sum(confusion[label].values())
    predicted = sum(confusion[gold][label] for gold in TASKS)
    correct = confusion[label][label]
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def expected_calibration_error(outcomes: Sequence[Outcome]) -> float:
    """Mean |confidence - accuracy| over ECE_BINS confidence bins, weighted by bin size."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(ECE_BINS)]
    for outcome in outcomes:
        confidence = outcome.probabilities[TASKS.index(outcome.task)]
        index = min(ECE_BINS - 1, int(confidence * ECE_BINS))
        bins[index].append((confidence, outcome.task == outcome.gold))
    total = sum(map(len, bins))
    error = 0.0
    for members in bins:
        if members:
            gap = sum(c for c, _ in members) - sum(ok for _, ok in members)
            error += abs(gap) / total
    return error


def scores(outcomes: Sequence[Outcome]) -> Scores:
    confusion = confusion_of(outcomes)
    stats = [label_stats(confusion, label) for label in TASKS]
    present = [s["f1"] for s in stats if s["support"]]
    heavy_gold = [o for o in outcomes if o.gold in HEAVY_TASKS]
    light_gold = [o for o in outcomes if o.gold in LIGHT_TASKS]
    n = len(outcomes)
    return Scores(
        n=n,
        accuracy=sum(o.task == o.gold for o in outcomes) / n if n else 0.0,
        macro_f1=sum(present) / len(present) if present else 0.0,
        heavy_recall=_share(sum(o.task in HEAVY_TASKS for o in heavy_gold), len(heavy_gold)),
        light_to_heavy=_share(sum(o.task in HEAVY_TASKS for o in light_gold), len(light_gold)),
        ece=expected_calibration_error(outcomes) if n else 0.0,
    )


def percentile(sorted_values: Sequence[int], fraction: float) -> float:
    """The value at `fraction` of a sorted list of nanoseconds, in microseconds."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1000.0


def bucket_name(chars: int) -> str:
    lower = 0
    for upper in LENGTH_BUCKETS:
        if chars < upper:
            return f"{lower}-{upper - 1}"
        lower = upper
    return f">={lower}"


def latency_by_length(outcomes: Sequence[Outcome]) -> dict[str, tuple[int, float, float]]:
    """Prompt-length bucket -> (rows, p50 us, p99 us)."""
    grouped: dict[str, list[int]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.chars):
        grouped.setdefault(bucket_name(outcome.chars), []).append(outcome.nanos)
    return {
        name: (len(values), percentile(sorted(values), 0.5), percentile(sorted(values), 0.99))
        for name, values in grouped.items()
    }


def sent_heavy(probabilities: Sequence[float], threshold: float) -> bool:
    """The heavy head's decision: the top task is heavy, or heavy tasks reach `threshold`."""
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return best in HEAVY or sum(probabilities[i] for i in HEAVY) >= threshold


def cost_curve(
    outcomes: Sequence[Outcome], thresholds: Sequence[float] = CURVE_THRESHOLDS
) -> list[tuple[float, float, float | None, float | None]]:
    """(threshold, share of rows sent heavy, heavy recall, light->heavy) per threshold."""
    curve = []
    heavy_gold = sum(o.gold in HEAVY_TASKS for o in outcomes)
    light_gold = sum(o.gold in LIGHT_TASKS for o in outcomes)
    for threshold in thresholds:
        sent = [sent_heavy(o.probabilities, threshold) for o in outcomes]
        caught = sum(s for s, o in zip(sent, outcomes, strict=True) if o.gold in HEAVY_TASKS)
        wasted = sum(s for s, o in zip(sent, outcomes, strict=True) if o.gold in LIGHT_TASKS)
        share = sum(sent) / len(outcomes) if outcomes else 0.0
        curve.append((threshold, share, _share(caught, heavy_gold), _share(wasted, light_gold)))
    return curve
