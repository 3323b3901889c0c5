"""`python -m triage.classify.build --shared ../shared`: rebuild the shipped weights.

Owns the reproducible build of `weights/classifier.json.gz`. It trains on the project's own
examples (data/examples.jsonl) plus, with --shared, the licence-clean rows of the labelled
corpora read from the shared folder at build time (never copied into the project):
`data/task-train/train.jsonl` rows without `"nc": true`, and `data/task-eval/dolly-train.jsonl`.
k-fold cross-validation (folds by attached passage) fits the probability temperature and the
heavy head's threshold; then one model is trained on every row. The file records which data
(file, rows, sha256) and which command produced it. Without --shared it trains on the
examples alone, as the first shipped model did. Same inputs and seed: byte-identical file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triage.classify.calibrate import (
    fit_heavy_threshold,
    fit_temperature,
    heavy_calls,
    out_of_fold_logits,
    with_temperature,
)
from triage.classify.evaluate import read_jsonl
from triage.classify.taxonomy import check_label
from triage.classify.train import DEFAULT_EPOCHS, save, train

PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLES = PACKAGE_DIR / "data" / "examples.jsonl"
WEIGHTS_DIR = PACKAGE_DIR / "weights"
FOLDS = 5
# Relative to --shared. Rows marked "nc" (non-commercial or unclear licence) are skipped.
SHARED_FILES = ("data/task-train/train.jsonl", "data/task-eval/dolly-train.jsonl")
COMMAND = "python -m triage.classify.build --shared ../shared"
# The project's own examples count this many times: they are written like real requests (long
# asks, pasted material, estimates), where the corpora are mostly templated benchmark rows.
OWN_WEIGHT = 3

log = logging.getLogger("triage.classify.build")

Rows = list[tuple[str, str]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_corpus(path: Path) -> Rows:
    """Licence-clean (prompt, label) rows of a corpus file; rows marked "nc" are left out."""
    rows: Rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("nc") is True:
                continue
            check_label(record["label"])
            rows.append((record["prompt"], record["label"]))
    return rows


def gather(examples: Path, shared: Path | None) -> tuple[Rows, list[dict[str, Any]]]:
    """Every training row, and a provenance entry per input file."""
    rows = read_jsonl(examples)
    sources: list[dict[str, Any]] = [
        {"file": "triage/classify/data/examples.jsonl", "rows": len(rows), "weight": OWN_WEIGHT}
    ]
    if shared is None:
        return rows, sources
    rows = rows * OWN_WEIGHT
    for name in SHARED_FILES:
        path = shared / name
        corpus = read_corpus(path)
        rows.extend(corpus)
        sources.append({"file": name, "rows": len(corpus), "sha256": _sha256(path)})
    return rows, sources


def calibrate(rows: Rows, *, folds: int, epochs: int, seed: int) -> dict[str, float]:
    """Temperature and heavy threshold from out-of-fold predictions, with what they measure."""
    scored = out_of_fold_logits(rows, folds=folds, epochs=epochs, seed=seed)
    correct = sum(1 for logits, label in scored if logits.index(max(logits)) == label)
    temperature = fit_temperature(scored)
    threshold = fit_heavy_threshold(scored, temperature)
    recall, light = heavy_calls(scored, temperature, threshold)
    return {
        "temperature": round(temperature, 4),
        "heavy_threshold": threshold,
        "accuracy": round(correct / len(scored), 4),
        "heavy_recall": round(recall, 4),
        "light_to_heavy": round(light, 4),
    }


def build(
    examples: Path,
    out: Path,
    *,
    shared: Path | None = None,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    folds: int = FOLDS,
) -> Path:
    """Train on the examples (and shared corpora), calibrate, write the weights into `out`."""
    rows, sources = gather(examples, shared)
    counts = Counter(label for _, label in rows)
    log.info("training on %d rows: %s", len(rows), dict(sorted(counts.items())))
    started = time.perf_counter()
    fitted = calibrate(rows, folds=folds, epochs=epochs, seed=seed)
    log.info("%d-fold cross-validation: %s", folds, fitted)
    model = with_temperature(train(rows, epochs=epochs, seed=seed), fitted["temperature"])
    classifier = model.with_heavy_threshold(fitted["heavy_threshold"])
    log.info("trained in %.1fs (%d buckets)", time.perf_counter() - started, len(model.model.rows))
    provenance = {
        "command": COMMAND if shared is not None else "python -m triage.classify.build",
        "sources": sources,
        "settings": {"epochs": epochs, "seed": seed, "folds": folds},
        "cross_validated": fitted,
    }
    target = save(classifier, out, provenance)
    log.info("wrote %s (%d bytes)", target, target.stat().st_size)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument(
        "--shared", type=Path, help="the shared folder holding data/task-train and data/task-eval"
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(
        args.examples,
        args.out,
        shared=args.shared,
        epochs=args.epochs,
        seed=args.seed,
        folds=args.folds,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
