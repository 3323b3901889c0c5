"""The classifier's cheaper paths against their plain definitions: the struct read of a sum's
class fields, the constant-key probabilities dict, the Classification tuple, the int tests of
words_of. Results must not move (bench/classify_identity.py checks the shipped corpora)."""

from __future__ import annotations

import math
import random
import re

import pytest

from triage.classify import TASKS, Classification, Classifier
from triage.classify.classifier import by_task
from triage.classify.features import words_of
from triage.classify.linear import (
    FIELD_MASK,
    LIMIT,
    OFFSET,
    QSCALE,
    SHIFTS,
    SMALL_SUM,
    LinearModel,
    fields_of,
    pack,
    softmax,
)


def shifted(total: int) -> list[int]:
    return [(total >> shift) & FIELD_MASK for shift in SHIFTS]


@pytest.mark.parametrize("count", [1, 2, 17, SMALL_SUM - 1, SMALL_SUM, SMALL_SUM + 1, 3000])
def test_fields_of_a_sum_match_shifting_them_out_at_the_extremes(count: int) -> None:
    rng = random.Random(count)
    # All rows at +LIMIT (the largest fields a sum of `count` rows can hold, where a 32-bit read
    # would first overflow), all at -LIMIT, and a random mix.
    for rows in (
        [pack([LIMIT] * 11)] * count,
        [pack([-LIMIT] * 11)] * count,
        [pack([rng.uniform(-LIMIT, LIMIT) for _ in SHIFTS]) for _ in range(count)],
    ):
        total = sum(rows)
        assert list(fields_of(total, count)) == shifted(total)


def test_logits_past_the_small_sum_still_score_like_the_definition() -> None:
    rng = random.Random(3)
    rows = {b: pack([rng.uniform(-LIMIT, LIMIT) for _ in SHIFTS]) for b in range(1, 2000)}
    model = LinearModel(rows=rows, bias=tuple(rng.uniform(-1, 1) for _ in SHIFTS))
    for size in (5, SMALL_SUM, SMALL_SUM + 1, 1500):
        ids = set(rng.sample(range(1, 2000), size))
        context = set(rng.sample(range(1, 2000), min(size, 400)))
        total, ctx = sum(rows[i] for i in ids), sum(rows[i] for i in context)
        scale = 1.0 / (math.sqrt(len(ids)) * QSCALE)
        want = [
            b + scale * (f - len(ids) * OFFSET)
            for b, f in zip(model.bias, shifted(total), strict=True)
        ]
        want = [
            w + 0.3 * scale * (f - len(context) * OFFSET)
            for w, f in zip(want, shifted(ctx), strict=True)
        ]
        assert model.logits(ids, context) == want


def test_softmax_is_the_plain_definition() -> None:
    rng = random.Random(5)
    for _ in range(200):
        logits = [rng.uniform(-50, 50) for _ in TASKS]
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        assert softmax(logits) == [e * (1.0 / sum(exps)) for e in exps]


def test_probabilities_by_task_follow_the_taxonomy_order() -> None:
    values = [float(i) for i in range(len(TASKS))]
    mapping = by_task(values)
    assert list(mapping) == list(TASKS)
    assert list(mapping.values()) == values
    with pytest.raises(ValueError):
        by_task(values[:-1])


def test_a_classification_is_immutable_and_reads_by_attribute() -> None:
    result = Classifier.load(None).classify([{"role": "user", "content": "hi there"}])
    assert isinstance(result, Classification)
    assert list(result.probabilities) == list(TASKS)
    with pytest.raises(AttributeError):
        result.task = "code"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.probabilities["code"] = 1.0  # type: ignore[index]
    made = Classification("code", {"code": 1.0}, 1.0, "heavy", 0.5, "model")
    assert (made.task, made.tier, made.reason) == ("code", "heavy", "model")


_TOKEN = re.compile(rb"[0-9a-z_\x80-\xff]+|[?!:]")


@pytest.mark.parametrize(
    "text",
    ["", "?", "a?b!c:d", "::!!??", "Why? Because: no!", "é? ü:x", "?" * 50, "no marks at all"],
)
def test_words_of_splits_like_the_token_regex(text: str) -> None:
    folded = re.sub(rb"[0-9]", b"0", text.lower().encode())
    assert words_of(text) == _TOKEN.findall(folded)
