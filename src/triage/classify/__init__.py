"""Task-type classification: which kind of job a chat request is, and how hard it looks.

This package owns the classifier the gateway uses to route requests: a few high-precision rules,
then a hashed-feature softmax model with a "needs a heavy model" threshold, trained on the
project's own examples (data/examples.jsonl) plus the licence-clean shared corpora (see build.py)
and shipped as weights/classifier.json.gz. Pure standard library; nothing runs at import time.
"""

from triage.classify.classifier import Classification, Classifier
from triage.classify.evaluate import EvalReport, Row, evaluate, read_jsonl, read_rows
from triage.classify.taxonomy import DEFAULT_TIERS, TASKS
from triage.classify.train import save, train

__all__ = [
    "DEFAULT_TIERS",
    "TASKS",
    "Classification",
    "Classifier",
    "EvalReport",
    "Row",
    "evaluate",
    "read_jsonl",
    "read_rows",
    "save",
    "train",
]
