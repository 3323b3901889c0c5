"""Temperature calibration, so the reported probabilities mean what they say.

Owns fitting one temperature T from out-of-fold predictions (k-fold cross-validation over the
training rows) and folding 1/T into a model's weights. A model trained to ~100% training
accuracy is overconfident: its raw softmax says 0.99 where it is right perhaps 85% of the time.
Dividing every logit by T fixes that without changing which task wins, and because the division
is folded into the stored weights it costs nothing at classification time. Also owns choosing the
heavy head's threshold from the same out-of-fold predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from zlib import crc32

from triage.classify.classifier import Classifier, example_ids
from triage.classify.linear import LinearModel, softmax, unpack
from triage.classify.prompt import split_instruction
from triage.classify.sgd import example
from triage.classify.taxonomy import DEFAULT_TIERS, TASKS, check_label
from triage.classify.train import train_examples

SHARED_PASSAGE = 200
# Log-spaced candidates from 0.5 to ~16: wide enough for any model this trainer produces.
TEMPERATURES = tuple(0.5 * 2 ** (step / 8) for step in range(41))
# Heavy-head thresholds tried from the strictest down (0.50, 0.48, ... 0.06).
HEAVY_THRESHOLDS = tuple(round(0.5 - 0.02 * step, 2) for step in range(23))
LIGHT_TO_HEAVY_BUDGET = 0.03
HEAVY = tuple(index for index, task in enumerate(TASKS) if DEFAULT_TIERS[task] == "heavy")


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
    examples = [example(example_ids(text), check_label(label)) for text, label in rows]
    scored: list[tuple[list[float], int]] = []
    for fold in range(folds):
        held_out = [row for row, where in zip(examples, assigned, strict=True) if where == fold]
        kept = [row for row, where in zip(examples, assigned, strict=True) if where != fold]
        if not held_out or not kept:
            continue
        trained = train_examples(kept, epochs=epochs, seed=seed)
        scored.extend((trained.model.logits(ids), label) for ids, label, _ in held_out)
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
    return Classifier(LinearModel.from_floats(rows, bias), classifier.heavy_threshold)


def heavy_calls(
    scored: Sequence[tuple[list[float], int]], temperature: float, threshold: float
) -> tuple[float, float]:
    """(heavy recall, share of light rows sent heavy) of the heavy head at `threshold`."""
    heavy_hit = heavy_all = light_hit = light_all = 0
    for logits, label in scored:
        probs = softmax([value / temperature for value in logits])
        best = probs.index(max(probs))
        sent = best in HEAVY or sum(probs[i] for i in HEAVY) >= threshold
        if label in HEAVY:
            heavy_all, heavy_hit = heavy_all + 1, heavy_hit + sent
        elif DEFAULT_TIERS[TASKS[label]] == "light":
            light_all, light_hit = light_all + 1, light_hit + sent
    return heavy_hit / max(heavy_all, 1), light_hit / max(light_all, 1)


def fit_heavy_threshold(
    scored: Sequence[tuple[list[float], int]],
    temperature: float,
    *,
    light_budget: float = LIGHT_TO_HEAVY_BUDGET,
) -> float:
    """The lowest threshold whose out-of-fold share of light rows sent heavy stays within
    `light_budget` (1.0, the top task only, when even the strictest candidate exceeds it).

    Recall first: missing a hard prompt costs a wrong answer, sending an easy one heavy costs
    money, so the threshold goes as low as the budget allows. Out-of-fold rows come from the
    training distribution, where the model is surer than on real traffic; a low threshold
    holds back recall for the prompts it has never seen the like of.
    """
    best = 1.0
    for threshold in HEAVY_THRESHOLDS:
        if heavy_calls(scored, temperature, threshold)[1] > light_budget:
            break
        best = threshold
    return best
