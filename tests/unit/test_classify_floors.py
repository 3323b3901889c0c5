"""The shipped weights hold issue 12's floors on the labelled sets in ../shared, and the file
records how it was built. Reads ../shared: runs only in `make test-shared`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from triage.classify import Classifier, evaluate, read_rows
from triage.classify.build import SHARED_FILES
from triage.classify.evaluate import Row
from triage.classify.store import read

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load()


def hand_rows(shared_dir: Path) -> list[Row]:
    rows = []
    for name in ("train.jsonl", "dev.jsonl"):
        with (shared_dir / "data/task-train" / name).open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("label_by") == "hand":
                    rows.append(Row(record["prompt"], record["label"]))
    return rows


def test_task_train_dev_floors(classifier: Classifier, shared_dir: Path) -> None:
    report = evaluate(classifier, read_rows(shared_dir / "data/task-train/dev.jsonl"))
    assert report.accuracy >= 0.85
    assert report.heavy_recall is not None and report.heavy_recall >= 0.93
    assert report.light_to_heavy is not None and report.light_to_heavy <= 0.05


def test_hand_labelled_heavy_recall_floor(classifier: Classifier, shared_dir: Path) -> None:
    report = evaluate(classifier, hand_rows(shared_dir))
    assert report.heavy_recall is not None and report.heavy_recall >= 0.90


def test_task_eval_floors(classifier: Classifier, shared_dir: Path) -> None:
    dolly = evaluate(classifier, read_rows(shared_dir / "data/task-eval/dolly-dev.jsonl"))
    assert dolly.accuracy >= 0.78
    vicuna = evaluate(classifier, read_rows(shared_dir / "data/task-eval/vicuna-dev.jsonl"))
    assert vicuna.heavy_recall is not None and vicuna.heavy_recall >= 0.95


def test_shipped_weights_record_the_data_and_command_that_built_them(shared_dir: Path) -> None:
    provenance = read().provenance or {}
    assert provenance["command"] == "python -m triage.classify.build --shared ../shared"
    recorded = {source["file"]: source for source in provenance["sources"]}
    for name in SHARED_FILES:
        digest = hashlib.sha256((shared_dir / name).read_bytes()).hexdigest()
        assert recorded[name]["sha256"] == digest, f"{name} changed since the weights were built"
