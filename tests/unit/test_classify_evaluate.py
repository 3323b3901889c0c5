"""Evaluation figures on a tiny hand-made set, and JSONL reading errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from triage.classify import Classification, Classifier, evaluate, read_jsonl, read_rows
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


class Weighted(Classifier):
    """Fixed probabilities per text; the task is the top one, as the model would pick."""

    def __init__(self, answers: dict[str, dict[str, float]], threshold: float = 1.0) -> None:
        super().__init__(LinearModel(rows={}, bias=(0.0,) * len(TASKS)), threshold)
        self.answers = answers
        self.conversations: list[object] = []

    def classify_text(self, text: str) -> Classification:
        shares = self.answers[text]
        probs = {t: shares.get(t, 0.0) for t in TASKS}
        task = max(probs, key=probs.__getitem__)
        return Classification(task, probs, probs[task], DEFAULT_TIERS[task], 0.0, "model")

    def classify(self, messages: object, **_: object) -> Classification:
        self.conversations.append(messages)
        return self.classify_text(messages[-1]["content"])  # type: ignore[index]


def test_calibration_error_is_reported_for_overconfident_answers() -> None:
    # Always 100% sure, right 4 times out of 6: expected calibration error 1 - 4/6.
    rows = [("a", "code"), ("b", "code"), ("c", "reasoning"), ("d", "open_qa"), ("e", "open_qa")]
    rows.append(("f", "chat"))
    answers = {"a": "code", "b": "open_qa", "c": "reasoning", "d": "open_qa", "e": "code"}
    answers["f"] = "chat"
    report = evaluate(Scripted(answers), rows)
    assert report.ece == pytest.approx(2 / 6)
    assert "ECE=0.333" in report.render()
    # Honest 60% confidence that is right 3 times out of 5 is perfectly calibrated.
    honest = {text: {"code": 0.6, "open_qa": 0.4} for text in "vwxyz"}
    gold = [("v", "code"), ("w", "code"), ("x", "code"), ("y", "open_qa"), ("z", "open_qa")]
    assert evaluate(Weighted(honest), gold).ece == pytest.approx(0.0)


def test_cost_quality_curve_trades_heavy_share_for_recall() -> None:
    answers = {
        "hard but unsure": {"open_qa": 0.6, "code": 0.4},
        "hard and sure": {"code": 0.9, "open_qa": 0.1},
        "easy, a bit codey": {"open_qa": 0.8, "code": 0.2},
        "easy": {"chat": 1.0},
    }
    rows = [("hard but unsure", "code"), ("hard and sure", "code")]
    rows += [("easy, a bit codey", "open_qa"), ("easy", "chat")]
    report = evaluate(Weighted(answers), rows)
    curve = {threshold: (share, recall, light) for threshold, share, recall, light in report.curve}
    assert curve[1.0] == (0.25, 0.5, 0.0)  # top task only
    assert curve[0.4] == (0.5, 1.0, 0.0)
    assert curve[0.2] == (0.75, 1.0, 0.5)
    shares = [share for _, share, _, _ in report.curve]
    assert shares == sorted(shares, reverse=True)  # thresholds ascend, heavy share falls
    table = report.render()
    assert "cost/quality curve" in table
    row = next(line for line in table.splitlines() if line.startswith("0.40 "))
    assert row.split() == ["0.40", "0.500", "1.000", "0.000"]
    assert report.to_json()["cost_curve"][0]["threshold"] == 0.05
    # The classifier's own threshold is one of the points.
    shipped = evaluate(Weighted(answers, threshold=0.33), rows)
    assert 0.33 in [threshold for threshold, *_ in shipped.curve]


def test_rows_are_grouped_by_source_label_prefix_and_bucketed_by_length(tmp_path: Path) -> None:
    long_text = "word " * 200
    lines = [
        json.dumps({"prompt": "hi", "label": "chat", "source_label": "clinc:greeting"}),
        json.dumps({"prompt": "yo", "label": "chat", "source_label": "clinc:greeting"}),
        json.dumps({"prompt": long_text, "label": "chat", "source_label": "act:Poet", "x": 1}),
    ]
    rows = read_rows(write(tmp_path, lines))
    answers = {"hi": {"chat": 1.0}, "yo": {"open_qa": 1.0}, long_text: {"chat": 1.0}}
    report = evaluate(Weighted(answers), rows)
    assert set(report.groups) == {"clinc", "act"}
    assert report.groups["clinc"].accuracy == 0.5 and report.groups["act"].n == 1
    assert set(report.latency) == {"0-99", "500-1999"}
    assert report.latency["0-99"][0] == 2
    table = report.render()
    assert "by source_label prefix" in table and "latency by prompt length" in table


def test_conversation_rows_are_classified_as_conversations(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "Write a sorting function in Go."},
        {"role": "assistant", "content": "func sortInts(xs []int) { sort.Ints(xs) }"},
        {"role": "user", "content": "now in Rust"},
    ]
    path = write(tmp_path, [json.dumps({"messages": messages, "label": "code"})])
    rows = read_rows(path)
    assert rows[0].prompt == "now in Rust"
    scripted = Weighted({"now in Rust": {"code": 1.0}})
    assert evaluate(scripted, rows).accuracy == 1.0
    assert scripted.conversations == [messages]
    assert read_jsonl(path) == [("now in Rust", "code")]


@pytest.mark.parametrize(
    "bad", [{"messages": [], "label": "chat"}, {"messages": [{"content": "x"}], "label": "chat"}]
)
def test_bad_conversation_rows_name_the_line(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="line 1"):
        read_rows(write(tmp_path, [json.dumps(bad)]))
