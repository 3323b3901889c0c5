"""The Classifier: rules first, then the linear model; produces a Classification.

Owns the public classification result, loading shipped or saved weights, and adapting a copy of
the model to an operator's own labelled prompts at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from triage.classify import store
from triage.classify.difficulty import difficulty
from triage.classify.features import analyse
from triage.classify.linear import LinearModel, pack, softmax
from triage.classify.prompt import Prompt, from_messages, from_text
from triage.classify.rules import RULE_PRECISION, apply_rules
from triage.classify.sgd import Example, SgdSettings, example, fit
from triage.classify.taxonomy import DEFAULT_TIERS, TASKS, check_label

# Operator examples are few, so they get the full training rate for a dozen passes: enough to
# pull borderline prompts that resemble them over to the operator's label. Only the buckets the
# examples use are touched, so unrelated prompts keep the shipped behaviour.
ADAPT_SETTINGS = SgdSettings(epochs=12, rate=3.0, decay=0.3, l2=0.0, seed=0)


@dataclass(frozen=True)
class Classification:
    """What the classifier decided about one request."""

    task: str
    probabilities: Mapping[str, float]
    confidence: float
    tier: str
    difficulty: float
    reason: str


def example_ids(text: str) -> list[int]:
    """Feature ids of a single-message prompt, as used for training."""
    return sorted(analyse(from_text(text)).ids)


class Classifier:
    """Task-type classifier. Immutable: with_examples returns a new one."""

    __slots__ = ("_model",)

    def __init__(self, model: LinearModel) -> None:
        self._model = model

    @property
    def model(self) -> LinearModel:
        return self._model

    @classmethod
    def load(cls, path: Path | None = None) -> Classifier:
        """Weights from `path` (file or directory), or the shipped weights when None."""
        return cls(store.read(path))

    def with_examples(self, examples: Mapping[str, Sequence[str]]) -> Classifier:
        """A copy nudged towards the operator's labelled prompts (label -> prompts)."""
        items: list[Example] = []
        for label, prompts in examples.items():
            index = check_label(label)
            if isinstance(prompts, str):
                raise ValueError(f"examples for {label!r} must be a list of prompts, not a string")
            items.extend(example(example_ids(text), index) for text in prompts)
        if not items:
            return self
        rows = self._model.float_rows({bucket for ids, _, _ in items for bucket in ids})
        # The bias is left alone: a handful of examples says nothing about the label mix of
        # real traffic, and moving it would tilt every other prompt too.
        fit(items, rows, list(self._model.bias), ADAPT_SETTINGS)
        merged = dict(self._model.rows)
        merged.update((bucket, pack(row)) for bucket, row in rows.items())
        return Classifier(LinearModel(rows=merged, bias=self._model.bias))

    def classify(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        has_tools: bool = False,
        has_response_format: bool = False,
    ) -> Classification:
        """Classify a chat request by its last user turn."""
        prompt = from_messages(
            messages, has_tools=has_tools, has_response_format=has_response_format
        )
        return self.classify_prompt(prompt)

    def classify_text(self, text: str) -> Classification:
        """Classify a single user message."""
        return self.classify_prompt(from_text(text))

    def classify_prompt(self, prompt: Prompt, *, rules: bool = True) -> Classification:
        """Classify a parsed prompt; rules=False asks the model alone."""
        analysis = analyse(prompt)
        probs = softmax(self._model.logits(analysis.ids, analysis.context_ids))
        hit = apply_rules(analysis) if rules else None
        if hit is None:
            best = probs.index(max(probs))
            task, reason = TASKS[best], "model"
        else:
            best = TASKS.index(hit.task)
            task, reason = hit.task, f"rule:{hit.name}"
            probs = [(1.0 - RULE_PRECISION) * p for p in probs]
            probs[best] += RULE_PRECISION
        return Classification(
            task=task,
            probabilities=MappingProxyType(dict(zip(TASKS, probs, strict=True))),
            confidence=probs[best],
            tier=DEFAULT_TIERS[task],
            difficulty=difficulty(analysis, task),
            reason=reason,
        )
