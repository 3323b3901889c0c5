"""The Classifier: rules first, then the linear model and its heavy head; a Classification.

Owns the public classification result, the decision (override rules, then the model's argmax,
then the "needs a heavy model" threshold), follow-up inheritance in conversations, loading
shipped or saved weights, and adapting a copy of the model to an operator's own prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from triage.classify import store
from triage.classify.difficulty import difficulty
from triage.classify.features import Analysis, analyse, new_memos
from triage.classify.linear import LinearModel, pack, probabilities
from triage.classify.prompt import (
    Prompt,
    content_text,
    earlier_user_text,
    from_messages,
    from_text,
)
from triage.classify.rules import RULE_PRECISION, RuleHit, apply_rules, follows_up, hint_ids
from triage.classify.sgd import Example, SgdSettings, example, fit
from triage.classify.store import Weights
from triage.classify.taxonomy import DEFAULT_TIERS, HEAVY_TASKS, TASKS, check_label

# Operator examples are few, so they get the full training rate for a dozen passes: enough to
# pull borderline prompts that resemble them over to the operator's label. Only the buckets the
# examples use are touched, so unrelated prompts keep the shipped behaviour.
ADAPT_SETTINGS = SgdSettings(epochs=12, rate=3.0, decay=0.3, l2=0.0, seed=0, fit_bias=False)
# A follow-up's probabilities lean this much on the turn it follows: "now make it faster" says
# little by itself, the request before it says what "it" is.
INHERIT = 0.7
# A turn that only points back ("write a haiku about it") inherits unless the model is this
# sure of it alone; one that opens like a continuation ("now ...", "what if ...") always does.
STANDS_ALONE = 0.9
HEAVY = tuple(index for index, task in enumerate(TASKS) if task in HEAVY_TASKS)
# The heavy tasks' probabilities as one tuple (summed in HEAVY order, as before). There are two
# (code, reasoning); with one, itemgetter would return a float and every classification fail.
_HEAVY_OF = itemgetter(*HEAVY)
TIERS = tuple(DEFAULT_TIERS[task] for task in TASKS)


class Classification(NamedTuple):
    """What the classifier decided about one request.

    A NamedTuple (immutable, read by attribute) rather than a frozen dataclass: one is built per
    request, and a frozen dataclass's __init__ sets each field through object.__setattr__
    (~10k instructions against ~2k).
    """

    task: str
    probabilities: Mapping[str, float]
    confidence: float
    tier: str
    difficulty: float
    reason: str


def feature_ids(analysis: Analysis) -> set[int]:
    """The model's active features: hashed words, dense signals and code hints."""
    hints = hint_ids(analysis)
    return analysis.ids.union(hints) if hints else analysis.ids


def example_ids(text: str) -> list[int]:
    """Feature ids of a single-message prompt, as used for training."""
    return sorted(feature_ids(analyse(from_text(text))))


class Classifier:
    """Task-type classifier. Immutable: with_examples returns a new one.

    `heavy_threshold`: when code + reasoning together reach this probability the request goes
    to the likelier of the two even if a light task has the single highest score; chosen at
    build time for heavy recall (1.0 or more: argmax only).
    """

    __slots__ = ("_heavy_threshold", "_memos", "_model")

    def __init__(self, model: LinearModel, heavy_threshold: float = 1.0) -> None:
        self._model = model
        self._heavy_threshold = heavy_threshold
        # Hashed ids of tokens seen before (bounded; ids are the same without it).
        self._memos = new_memos()

    @property
    def model(self) -> LinearModel:
        return self._model

    @property
    def heavy_threshold(self) -> float:
        return self._heavy_threshold

    def with_heavy_threshold(self, threshold: float) -> Classifier:
        return Classifier(self._model, threshold)

    @classmethod
    def load(cls, path: Path | None = None) -> Classifier:
        """Weights from `path` (file or directory), or the shipped weights when None."""
        weights = store.read(path)
        return cls(weights.model, weights.heavy_threshold)

    def weights(self) -> Weights:
        return Weights(self._model, self._heavy_threshold)

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
        model = LinearModel(rows=merged, bias=self._model.bias)
        return Classifier(model, self._heavy_threshold)

    def classify(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        has_tools: bool = False,
        has_response_format: bool = False,
    ) -> Classification:
        """Classify a chat request: its last user turn, or for a short follow-up the turn it
        continues as well."""
        prompt = from_messages(
            messages, has_tools=has_tools, has_response_format=has_response_format
        )
        analysis = analyse(prompt, self._memos)
        hit = apply_rules(analysis)
        probs = self._model_probabilities(analysis)
        if hit is not None:
            return self._ruled(analysis, probs, hit)
        # A lone message has no earlier user turn to inherit from: the follow-up test could not
        # change its result, so it is not run.
        how = follows_up(analysis) if len(messages) > 1 else None
        if how is not None:
            earlier = earlier_user_text(messages)
            if earlier.strip() and (how == "opener" or max(probs) < STANDS_ALONE):
                before = self.probabilities(analyse(from_text(earlier), self._memos))
                mixed = [
                    (1 - INHERIT) * a + INHERIT * b for a, b in zip(probs, before, strict=True)
                ]
                return self._decide(analysis, mixed, "followup")
        return self._decide(analysis, probs, "model")

    def classify_single(
        self, content: Any, *, has_tools: bool = False, has_response_format: bool = False
    ) -> Classification:
        """classify([message]) for a request of one message (any role), given its content (a
        string, None or a list of parts): the same result without a list of message dicts."""
        prompt = from_text(
            content_text(content), has_tools=has_tools, has_response_format=has_response_format
        )
        return self._classify(analyse(prompt, self._memos), rules=True)

    def classify_text(self, text: str) -> Classification:
        """Classify a single user message."""
        return self._classify(analyse(from_text(text), self._memos), rules=True)

    def classify_prompt(self, prompt: Prompt, *, rules: bool = True) -> Classification:
        """Classify a parsed prompt; rules=False asks the model alone."""
        return self._classify(analyse(prompt, self._memos), rules=rules)

    def probabilities(self, analysis: Analysis) -> list[float]:
        """The model's calibrated probabilities in TASKS order (override rules included)."""
        probs = self._model_probabilities(analysis)
        hit = apply_rules(analysis)
        return probs if hit is None else _with_rule(probs, hit)

    def _model_probabilities(self, analysis: Analysis) -> list[float]:
        return probabilities(self._model, feature_ids(analysis), analysis.context_ids)

    def _classify(self, analysis: Analysis, *, rules: bool) -> Classification:
        probs = self._model_probabilities(analysis)
        hit = apply_rules(analysis) if rules else None
        if hit is None:
            return self._decide(analysis, probs, "model")
        return self._ruled(analysis, probs, hit)

    def _ruled(self, analysis: Analysis, probs: list[float], hit: RuleHit) -> Classification:
        return self._result(analysis, _with_rule(probs, hit), TASKS.index(hit.task), hit.reason)

    def _decide(self, analysis: Analysis, probs: list[float], reason: str) -> Classification:
        best = probs.index(max(probs))
        if best not in HEAVY and sum(_HEAVY_OF(probs)) >= self._heavy_threshold:
            best = max(HEAVY, key=probs.__getitem__)
            reason = "heavy_head"
        return self._result(analysis, probs, best, reason)

    def _result(
        self, analysis: Analysis, probs: list[float], best: int, reason: str
    ) -> Classification:
        task = TASKS[best]
        fields = (
            task,
            MappingProxyType(by_task(probs)),
            probs[best],
            TIERS[best],
            difficulty(analysis, task),
            reason,
        )
        built: Classification = tuple.__new__(Classification, fields)  # no per-field call
        return built


def by_task(values: Sequence[float]) -> dict[str, float]:
    """{task: value} in TASKS order, as one dict display with constant keys: half the
    instructions of dict(zip(TASKS, values)). A test holds the keys to TASKS."""
    (
        classification,
        extraction,
        closed_qa,
        summarization,
        rewrite,
        open_qa,
        brainstorming,
        chat,
        creative_writing,
        code,
        reasoning,
    ) = values
    return {
        "classification": classification,
        "extraction": extraction,
        "closed_qa": closed_qa,
        "summarization": summarization,
        "rewrite": rewrite,
        "open_qa": open_qa,
        "brainstorming": brainstorming,
        "chat": chat,
        "creative_writing": creative_writing,
        "code": code,
        "reasoning": reasoning,
    }


def _with_rule(probs: list[float], hit: RuleHit) -> list[float]:
    """The model's probabilities shrunk to make room for a rule's precision on its task."""
    shrunk = [(1.0 - RULE_PRECISION) * p for p in probs]
    shrunk[TASKS.index(hit.task)] += RULE_PRECISION
    return shrunk
