"""Temperature calibration, so the reported probabilities mean what they say.

Owns fitting one temperature T from out-of-fold predictions (k-fold cross-validation over the
training rows) and folding 1/T into a model's weights. A model trained to ~100% training
accuracy is overconfident: its raw softmax says 0.99 where it is right perhaps 85% of the time.
Dividing every logit by T fixes that without changing which task wins, and because the division
is folded into the stored weights it costs nothing at classification time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from zlib import crc32

from triage.classify.classifier import Classifier, example_ids
from triage.classify.linear import LinearModel, unpack
from triage.classify.prompt import split_instruction
from triage.classify.taxonomy import check_label
from triage.classify.train import train

# Log-spaced candidates from 0.5 to ~16: wide enough for any model this trainer produces.
SHARED_PASSAGE = 200
TEMPERATURES = tuple(0.5 * 2 ** (step / 8) for step in range(41))


def _nll(scored: Sequence[tuple[list[float], int]], temperature: float) -> float:
    total = 0.0
    for logits, label in scored:
        scaled = [value / temperature for value in logits]
        top = max(scaled)
        total += top + math.log(sum(math.exp(value - top) for value in scaled)) - scaled[label]
    return total / len(scored)


def fold_of(text: str, folds: int) -> int:
    """The fold of a row. Rows sharing an attached passage share a fold, so a model is never
    scored on a passage it was trained on (that would flatter the estimate)."""
    body = split_instruction(text.strip())[1]
    key = body if len(body) >= SHARED_PASSAGE else text
    return crc32(key.encode()) % folds


def out_of_fold_logits(
    rows: Sequence[tuple[str, str]], *, folds: int, epochs: int, seed: int
) -> list[tuple[list[float], int]]:
    """Logits for every row from a model that did not see it (or its passage)."""
    assigned = [fold_of(text, folds) for text, _ in rows]
    scored: list[tuple[list[float], int]] = []
    for fold in range(folds):
        held_out = [row for row, where in zip(rows, assigned, strict=True) if where == fold]
        kept = [row for row, where in zip(rows, assigned, strict=True) if where != fold]
        if not held_out or not kept:
            continue
        trained = train(kept, epochs=epochs, seed=seed)
        scored.extend(
            (trained.model.logits(example_ids(text)), check_label(label))
            for text, label in held_out
        )
    return scored


def fit_temperature(scored: Sequence[tuple[list[float], int]]) -> float:
    """The candidate temperature with the lowest mean negative log-likelihood, at least 1.

    Never below 1: cross-validation on our own examples is in-distribution, and real traffic
    is not, so we may soften the trainer's probabilities but never sharpen them.
    """
    if not scored:
        return 1.0
    return max(1.0, min(TEMPERATURES, key=lambda temperature: _nll(scored, temperature)))


def with_temperature(classifier: Classifier, temperature: float) -> Classifier:
    """A copy whose logits are divided by `temperature` (same decisions, softer probabilities)."""
    model = classifier.model
    rows = {
        bucket: [value / temperature for value in unpack(packed)]
        for bucket, packed in model.rows.items()
    }
    bias = [value / temperature for value in model.bias]
    return Classifier(LinearModel.from_floats(rows, bias))
