"""`triage train` and `triage eval` for operators: own labelled data, from scratch or on top of
the shipped model, and the full evaluation (calibration, curve) printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.classify import Classifier
from triage.cli import main

ROWS = [
    ("Write a Python function that sorts a list of invoices by date", "code"),
    ("Fix this JavaScript loop that never ends", "code"),
    ("Write a SQL query that counts orders per day", "code"),
    ("What is 12 times 7 plus 3?", "reasoning"),
    ("A train covers 120 km in 2 hours; what is its speed?", "reasoning"),
    ("Write a poem about the sea at night", "creative_writing"),
    ("Write a short story about a lost dog", "creative_writing"),
    ("hello, how are you today?", "chat"),
    ("hey there, what's up?", "chat"),
]


def write_rows(path: Path) -> Path:
    lines = [
        json.dumps({"prompt": p, "label": label, "source_label": "ops:" + label})
        for p, label in ROWS
    ]
    conversation = [
        {"role": "user", "content": "Write a Go function that reverses a slice."},
        {"role": "assistant", "content": "func reverse(xs []int) { ... }"},
        {"role": "user", "content": "now make it generic"},
    ]
    lines.append(json.dumps({"messages": conversation, "label": "code"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("base", [False, True])
def test_train_writes_weights_and_prints_the_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base: bool
) -> None:
    data = write_rows(tmp_path / "mine.jsonl")
    out = tmp_path / "weights"
    args = ["train", "--data", str(data), "--out", str(out), "--eval", str(data)]
    assert main(args + (["--base"] if base else [])) == 0
    printed = capsys.readouterr().out
    assert "trained on 10 rows" in printed
    assert "ECE=" in printed and "cost/quality curve" in printed and "by source_label" in printed
    trained = Classifier.load(out)
    assert trained.classify_text("Write a SQL query that counts orders per day").task == "code"
    if base:
        # On top of the shipped model: the shipped heavy threshold is kept.
        assert trained.heavy_threshold == Classifier.load().heavy_threshold


def test_eval_reports_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_rows(tmp_path / "a.jsonl")
    second = write_rows(tmp_path / "b.jsonl")
    assert main(["eval", "--data", str(first), "--data", str(second)]) == 0
    printed = capsys.readouterr().out
    assert f"== {first}" in printed and f"== {second}" in printed
    assert printed.count("cost/quality curve") == 2
    assert main(["eval", "--data", str(first), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n"] == 10 and "ece" in payload and payload["cost_curve"]


def test_eval_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "label": "smalltalk"}) + "\n", encoding="utf-8")
    assert main(["eval", "--data", str(bad)]) == 1
    assert "line 1" in capsys.readouterr().err
