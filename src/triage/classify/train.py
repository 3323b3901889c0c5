"""Training a Classifier from (prompt, label) rows, and saving it.

Owns the from-scratch training settings. The trainer is plain-Python SGD (see sgd.py); 6k rows
train in well under a minute on one core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from triage.classify import store
from triage.classify.classifier import Classifier, example_ids
from triage.classify.linear import N_CLASSES, LinearModel
from triage.classify.sgd import Example, SgdSettings, example, fit
from triage.classify.taxonomy import check_label

DEFAULT_EPOCHS = 16
# Features seen in fewer training prompts than this are dropped: a feature seen once mostly
# memorises its prompt, and dropping them halves the weights file and its load time.
MIN_COUNT = 2


def _drop_rare(examples: list[Example], min_count: int) -> list[Example]:
    counts = Counter(bucket for ids, _, _ in examples for bucket in ids)
    return [
        ([bucket for bucket in ids if counts[bucket] >= min_count], label, value)
        for ids, label, value in examples
    ]


def train(
    rows: Iterable[tuple[str, str]], *, epochs: int = DEFAULT_EPOCHS, seed: int = 0
) -> Classifier:
    """Train a new classifier on (prompt, label) rows; deterministic for a given seed."""
    examples = [example(example_ids(text), check_label(label)) for text, label in rows]
    return train_examples(examples, epochs=epochs, seed=seed)


def train_examples(
    examples: list[Example], *, epochs: int = DEFAULT_EPOCHS, seed: int = 0
) -> Classifier:
    """Train on already featurised examples (cross-validation featurises each row once)."""
    if not examples:
        raise ValueError("train() needs at least one (prompt, label) row")
    examples = _drop_rare(examples, MIN_COUNT)
    weights: dict[int, list[float]] = {}
    bias = [0.0] * N_CLASSES
    fit(examples, weights, bias, SgdSettings(epochs=epochs, seed=seed))
    return Classifier(LinearModel.from_floats(weights, bias))


def save(classifier: Classifier, directory: Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write the classifier's weights into `directory`; Classifier.load(directory) reads them."""
    weights = classifier.weights()._replace(provenance=provenance)
    return store.write(weights, directory)
