"""`python -m triage.classify.build`: retrain the shipped weights from the shipped examples.

Owns the reproducible build of `weights/classifier.json.gz` from `data/examples.jsonl`: k-fold
cross-validation to fit the probability temperature (and report an honest accuracy estimate),
then training on every example. Same examples and seed give a byte-identical file.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from triage.classify.calibrate import fit_temperature, out_of_fold_logits, with_temperature
from triage.classify.evaluate import evaluate, read_jsonl
from triage.classify.train import DEFAULT_EPOCHS, save, train

PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLES = PACKAGE_DIR / "data" / "examples.jsonl"
WEIGHTS_DIR = PACKAGE_DIR / "weights"
FOLDS = 5

log = logging.getLogger("triage.classify.build")


def build(examples: Path, out: Path, *, epochs: int, seed: int, folds: int = FOLDS) -> Path:
    """Train on `examples`, calibrate, and write the weights into `out`; returns the file."""
    rows = read_jsonl(examples)
    counts = Counter(label for _, label in rows)
    log.info("training on %d examples: %s", len(rows), dict(sorted(counts.items())))
    started = time.perf_counter()
    scored = out_of_fold_logits(rows, folds=folds, epochs=epochs, seed=seed)
    correct = sum(1 for logits, label in scored if logits.index(max(logits)) == label)
    temperature = fit_temperature(scored)
    log.info(
        "%d-fold cross-validated accuracy %.3f; temperature %.2f",
        folds,
        correct / len(scored),
        temperature,
    )
    classifier = with_temperature(train(rows, epochs=epochs, seed=seed), temperature)
    log.info(
        "trained in %.1fs (%d buckets)", time.perf_counter() - started, len(classifier.model.rows)
    )
    report = evaluate(classifier, rows)
    log.info("training-set accuracy %.3f (a sanity check, not a measure)", report.accuracy)
    target = save(classifier, out)
    log.info("wrote %s (%d bytes)", target, target.stat().st_size)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.examples, args.out, epochs=args.epochs, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
