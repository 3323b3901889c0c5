"""Evaluation figures on a tiny hand-made set, and JSONL reading errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from triage.classify import Classification, Classifier, evaluate, read_jsonl
from triage.classify.linear import LinearModel
from triage.classify.taxonomy import DEFAULT_TIERS, TASKS


class Scripted(Classifier):
    """A classifier whose answer for each text is fixed in advance."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__(LinearModel(rows={}, bias=(0.0,) * len(TASKS)))
        self.answers = answers

    def classify_text(self, text: str) -> Classification:
        task = self.answers[text]
        probs = {t: float(t == task) for t in TASKS}
        return Classification(task, probs, 1.0, DEFAULT_TIERS[task], 0.0, "model")


def test_evaluate_computes_accuracy_macro_f1_and_heavy_figures() -> None:
    # gold -> predicted: code->code, code->open_qa, reasoning->reasoning,
    # open_qa->open_qa, open_qa->code, chat->chat
    rows = [("a", "code"), ("b", "code"), ("c", "reasoning"), ("d", "open_qa"), ("e", "open_qa")]
    rows.append(("f", "chat"))
    answers = {"a": "code", "b": "open_qa", "c": "reasoning", "d": "open_qa", "e": "code"}
    answers["f"] = "chat"
    report = evaluate(Scripted(answers), rows)
    assert report.n == 6
    assert report.accuracy == pytest.approx(4 / 6)
    # Per-label F1: code P=1/2 R=1/2 -> 0.5; reasoning 1; open_qa P=1/2 R=1/2 -> 0.5; chat 1.
    assert report.macro_f1 == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)
    assert report.heavy_recall == pytest.approx(2 / 3)  # a and c predicted heavy, b not
    assert report.light_to_heavy == pytest.approx(1 / 3)  # e of d, e, f
    assert report.confusion["code"]["open_qa"] == 1
    assert report.per_label["code"]["support"] == 2
    assert report.p50_us >= 0 and report.p99_us >= report.p50_us


def test_report_json_and_table() -> None:
    report = evaluate(Scripted({"x": "chat"}), [("x", "chat")])
    payload = report.to_json()
    expected = {"n", "accuracy", "macro_f1", "heavy_recall", "light_to_heavy", "p50_us"}
    assert expected | {"p99_us", "per_label", "confusion"} <= set(payload)
    assert payload["heavy_recall"] is None  # no gold heavy rows
    json.dumps(payload)
    table = report.render()
    assert "accuracy=1.000" in table and "macro-F1" in table and "confusion" in table


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_jsonl_reads_rows_and_skips_blank_lines(tmp_path: Path) -> None:
    good = json.dumps({"prompt": "hi", "label": "chat", "id": 1})
    path = write(tmp_path, [good, "", json.dumps({"prompt": "2+2?", "label": "reasoning"})])
    assert read_jsonl(path) == [("hi", "chat"), ("2+2?", "reasoning")]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"prompt": "hi", "label": "smalltalk"}), "smalltalk"),
        (json.dumps({"label": "chat"}), "prompt"),
        (json.dumps(["hi", "chat"]), "object"),
    ],
)
def test_read_jsonl_errors_name_the_line(tmp_path: Path, bad: str, message: str) -> None:
    good = json.dumps({"prompt": "hi", "label": "chat"})
    path = write(tmp_path, [good, good, bad])
    with pytest.raises(ValueError, match="line 3") as error:
        read_jsonl(path)
    assert message in str(error.value)


def test_shipped_examples_are_valid_and_cover_every_label() -> None:
    from triage.classify.build import EXAMPLES

    rows = read_jsonl(EXAMPLES)
    counts = {task: sum(1 for _, label in rows if label == task) for task in TASKS}
    assert min(counts.values()) >= 60, counts
    assert not math.isnan(sum(counts.values()))
