"""Task-type classification: which kind of job a chat request is, and how hard it looks.

This package owns the classifier the gateway uses to route requests: a few high-precision rules,
then a hashed-feature softmax model trained on the project's own examples (data/examples.jsonl)
and shipped as weights/classifier.json.gz. Pure standard library; nothing runs at import time.
"""

from triage.classify.classifier import Classification, Classifier
from triage.classify.evaluate import EvalReport, evaluate, read_jsonl
from triage.classify.taxonomy import DEFAULT_TIERS, TASKS
from triage.classify.train import save, train

__all__ = [
    "DEFAULT_TIERS",
    "TASKS",
    "Classification",
    "Classifier",
    "EvalReport",
    "evaluate",
    "read_jsonl",
    "save",
    "train",
]
