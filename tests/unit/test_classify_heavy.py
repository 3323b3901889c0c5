"""The heavy head: a request goes to the heavy tier when code + reasoning together are likely
enough, even if a light task has the single highest score; the threshold travels with the
weights file, with the record of what built it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from triage.classify import TASKS, Classifier, save
from triage.classify.calibrate import fit_heavy_threshold, heavy_calls
from triage.classify.linear import LinearModel

# Probabilities the bias-only model gives every prompt: open_qa wins alone, but heavy tasks
# together hold 0.40.
SHARES = {"open_qa": 0.5, "code": 0.25, "reasoning": 0.15}


def bias_only(threshold: float) -> Classifier:
    rest = (1.0 - sum(SHARES.values())) / (len(TASKS) - len(SHARES))
    bias = tuple(math.log(SHARES.get(task, rest)) for task in TASKS)
    return Classifier(LinearModel(rows={}, bias=bias), threshold)


@pytest.mark.parametrize(
    ("threshold", "task", "reason"),
    [
        (0.35, "code", "heavy_head"),
        (0.40, "code", "heavy_head"),
        (0.45, "open_qa", "model"),
        (1.0, "open_qa", "model"),
    ],
)
def test_heavy_head_sends_likely_heavy_requests_to_the_heavy_tier(
    threshold: float, task: str, reason: str
) -> None:
    result = bias_only(threshold).classify_text("tell me about the thing")
    assert (result.task, result.reason) == (task, reason)
    assert result.confidence == pytest.approx(SHARES[task])


def test_heavy_threshold_and_provenance_survive_save_and_load(tmp_path: Path) -> None:
    classifier = bias_only(0.22)
    path = save(classifier, tmp_path, {"command": "made by a test", "sources": []})
    loaded = Classifier.load(path)
    assert loaded.heavy_threshold == 0.22
    assert loaded.model == classifier.model
    from triage.classify.store import read

    assert read(path).provenance == {"command": "made by a test", "sources": []}


def test_threshold_is_the_lowest_within_the_light_budget() -> None:
    # (logits, gold index): a light row whose heavy share is 0.3, and a heavy row whose top
    # task is light but whose heavy share is 0.45.
    code, open_qa = TASKS.index("code"), TASKS.index("open_qa")

    def logits(shares: dict[int, float]) -> list[float]:
        rest = (1.0 - sum(shares.values())) / (len(TASKS) - len(shares))
        return [math.log(shares.get(index, rest)) for index in range(len(TASKS))]

    light = (logits({open_qa: 0.6, code: 0.3}), open_qa)
    heavy = (logits({open_qa: 0.5, code: 0.45}), code)
    scored = [light, heavy]
    assert heavy_calls(scored, 1.0, 0.5) == (0.0, 0.0)
    assert heavy_calls(scored, 1.0, 0.4) == (1.0, 0.0)
    # Any light row sent heavy breaks a budget of 0: the threshold stops above 0.3 (+rest).
    threshold = fit_heavy_threshold(scored, 1.0, light_budget=0.0)
    assert 0.3 < threshold <= 0.45
    assert heavy_calls(scored, 1.0, threshold) == (1.0, 0.0)
    # With the whole budget the lowest candidate is taken.
    assert fit_heavy_threshold(scored, 1.0, light_budget=1.0) == pytest.approx(0.06)
