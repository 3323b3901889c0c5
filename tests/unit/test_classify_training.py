"""Training, saving and loading: determinism, round trips and the build command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triage.classify import Classifier, save, train
from triage.classify.build import build
from triage.classify.store import WEIGHTS_FILE

ROWS = [
    ("Write a Python function that sorts a list", "code"),
    ("Fix this JavaScript loop that never ends", "code"),
    ("Write a SQL query that counts orders per day", "code"),
    ("What is 12 times 7 plus 3?", "reasoning"),
    ("A train covers 120 km in 2 hours; what is its speed?", "reasoning"),
    ("Solve the equation 2x + 4 = 10", "reasoning"),
    ("Write a poem about the sea at night", "creative_writing"),
    ("Write a short story about a lost dog", "creative_writing"),
    ("Compose a limerick about a sleepy cat", "creative_writing"),
    ("hello, how are you today?", "chat"),
    ("hey there, what's up?", "chat"),
    ("good morning! how was your weekend?", "chat"),
]

PROBES = ["Write a Rust function to reverse a string", "hi, how are you?", "What is 5 times 9?"]


def test_training_is_deterministic_for_a_seed() -> None:
    first, second = train(ROWS, epochs=5, seed=3), train(ROWS, epochs=5, seed=3)
    assert first.model == second.model


def test_a_tiny_model_learns_its_training_rows() -> None:
    trained = train(ROWS, epochs=10)
    assert trained.classify_text("Write a Python function that sorts a list").task == "code"
    assert trained.classify_text("hey there, what's up?").task == "chat"


def test_train_rejects_unknown_labels_and_empty_input() -> None:
    with pytest.raises(ValueError, match="poetry"):
        train([("Write a poem", "poetry")])
    with pytest.raises(ValueError):
        train([])


def test_save_and_load_round_trip_gives_identical_output(tmp_path: Path) -> None:
    trained = train(ROWS, epochs=5)
    path = save(trained, tmp_path)
    assert path == tmp_path / WEIGHTS_FILE
    for loaded in (Classifier.load(tmp_path), Classifier.load(path)):
        for text in PROBES:
            assert loaded.classify_text(text) == trained.classify_text(text)


def test_shipped_weights_survive_a_save_and_load(tmp_path: Path) -> None:
    shipped = Classifier.load()
    reloaded = Classifier.load(save(shipped, tmp_path))
    assert reloaded.model == shipped.model


def test_loading_weights_from_a_different_feature_version_fails_clearly(tmp_path: Path) -> None:
    import gzip

    path = save(train(ROWS, epochs=1), tmp_path)
    raw = gzip.decompress(path.read_bytes())
    cut = raw.index(b"\n")
    header = json.loads(raw[:cut])
    header["features"] = "f0"
    path.write_bytes(gzip.compress(json.dumps(header).encode() + raw[cut:]))
    with pytest.raises(ValueError, match="features"):
        Classifier.load(path)


def test_a_truncated_or_foreign_weights_file_fails_clearly(tmp_path: Path) -> None:
    import gzip

    path = save(train(ROWS, epochs=1), tmp_path)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(ValueError, match="row data"):
        Classifier.load(path)
    path.write_bytes(gzip.compress(b'{"format": "something else"}\n'))
    with pytest.raises(ValueError, match="format"):
        Classifier.load(path)
    path.write_bytes(gzip.compress(b"not json at all\n"))
    with pytest.raises(ValueError, match="not a weights file"):
        Classifier.load(path)


def test_build_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    examples = tmp_path / "examples.jsonl"
    examples.write_text(
        "".join(json.dumps({"prompt": p, "label": label}) + "\n" for p, label in ROWS)
    )
    first = build(examples, tmp_path / "a", epochs=3, seed=0, folds=2).read_bytes()
    second = build(examples, tmp_path / "b", epochs=3, seed=0, folds=2).read_bytes()
    assert first == second


def test_build_reads_only_licence_clean_shared_rows_and_records_them(tmp_path: Path) -> None:
    from triage.classify.build import SHARED_FILES, gather
    from triage.classify.store import read

    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps({"prompt": p, "label": lb}) + "\n" for p, lb in ROWS))
    shared = tmp_path / "shared"
    clean = {"prompt": "Write a Kotlin function that parses dates", "label": "code", "nc": False}
    unclear = {"prompt": "Rate this film review from one to five", "label": "classification"}
    for name in SHARED_FILES:
        (shared / name).parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(clean), json.dumps(unclear | {"nc": True, "id": "x"})]
        (shared / name).write_text("\n".join(lines) + "\n")
    rows, _ = gather(examples, shared)
    assert ("Write a Kotlin function that parses dates", "code") in rows
    assert all(text != unclear["prompt"] for text, _ in rows)
    path = build(examples, tmp_path / "out", shared=shared, epochs=2, seed=0, folds=2)
    provenance = read(path).provenance or {}
    assert provenance["command"] == "python -m triage.classify.build --shared ../shared"
    files = {source["file"]: source for source in provenance["sources"]}
    assert all(
        files[name]["rows"] == 1 and len(files[name]["sha256"]) == 64 for name in SHARED_FILES
    )
