"""Stochastic gradient descent for the softmax model, in plain Python.

Owns the training loop shared by `train()` (from scratch) and `Classifier.with_examples()`
(a few passes over the operator's prompts on a copy of the shipped weights). Rows are float
lists keyed by bucket; a feature vector is a list of active buckets, each worth 1/sqrt(count).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from triage.classify.linear import N_CLASSES, softmax

# Class gradients smaller than this are skipped: once a row is learnt most of its 11 gradients
# are tiny, and skipping them makes an epoch several times faster with no visible accuracy cost.
MIN_GRADIENT = 2e-3

# (active bucket ids, class index, feature value). The value is 1/sqrt(number of features the
# prompt has at inference), which can differ from len(ids) when rare features were dropped.
Example = tuple[Sequence[int], int, float]


def example(ids: Sequence[int], label: int) -> Example:
    """An Example whose feature value matches what inference will use for these ids."""
    return ids, label, 1.0 / math.sqrt(len(ids)) if ids else 0.0


@dataclass(frozen=True)
class SgdSettings:
    """Learning rate schedule and L2 strength; `decay` shrinks the rate per epoch."""

    epochs: int = 16
    rate: float = 3.0
    decay: float = 0.5
    l2: float = 1e-5
    seed: int = 0
    # Adapting to a handful of operator examples keeps the class bias fixed: otherwise the bias
    # absorbs most of the update and is then thrown away (see Classifier.with_examples).
    fit_bias: bool = True


def fit(
    examples: Sequence[Example],
    rows: dict[int, list[float]],
    bias: list[float],
    settings: SgdSettings,
) -> None:
    """Train `rows` and `bias` in place on `examples`, missing rows starting at zero."""
    for ids, _, _ in examples:
        for bucket in ids:
            if bucket not in rows:
                rows[bucket] = [0.0] * N_CLASSES
    rng = random.Random(settings.seed)
    order = list(range(len(examples)))
    for epoch in range(settings.epochs):
        rng.shuffle(order)
        rate = settings.rate / (1.0 + settings.decay * epoch)
        shrink = 1.0 - rate * settings.l2
        bias_rate = rate if settings.fit_bias else 0.0
        for index in order:
            ids, label, value = examples[index]
            _step([rows[bucket] for bucket in ids], label, value, bias, (rate, shrink, bias_rate))


def _step(
    vectors: list[list[float]],
    label: int,
    scale: float,
    bias: list[float],
    schedule: tuple[float, float, float],
) -> None:
    if not vectors:
        return
    rate, shrink, bias_rate = schedule
    # L2 decay is applied lazily, only to the class weights a step actually updates.
    sums = [sum(column) for column in zip(*vectors, strict=True)]
    probs = softmax([b + scale * s for b, s in zip(bias, sums, strict=True)])
    probs[label] -= 1.0
    for cls, gradient in enumerate(probs):
        if -MIN_GRADIENT < gradient < MIN_GRADIENT:
            continue
        delta = rate * gradient * scale
        for vector in vectors:
            vector[cls] = vector[cls] * shrink - delta
        bias[cls] -= bias_rate * gradient
