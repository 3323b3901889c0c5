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
from triage.classify.features import (
    CODE_LEXICON,
    CONSTRAINT_WORDS,
    LEXICON_BITS,
    MATH_LEXICON,
    STEP_WORDS,
    Analysis,
    analyse,
    words_of,
)
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
from triage.classify.prompt import content_text, from_messages, from_text
from triage.classify.rules import (
    _ANAPHORA,
    _CONTINUE_PAIRS,
    _CONTINUE_WORDS,
    _THANKS_WORDS,
    FOLLOWUP_CHARS,
    HINT_BASE,
    HINTS,
    follows_up,
    hint_ids,
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


# Texts that reach each shortcut from both sides: fences, SELECT, code punctuation, cue words
# past any small counter, continuation openers and their look-alikes.
EDGE_TEXTS = [
    "",
    "hi",
    "what about it?",
    "how about Go",
    "same for the second one",
    "what if the list is empty?",
    "whatever about that",
    "howabout now",
    "same",
    "SELECT name FROM users",
    "select name from users",
    "x = f(a); y = g(b);",
    "def f(x):\n    return x",
    "```\nprint(1)\n```",
    "Explain why, step by step, and you must not exceed 3 lines. " * 40,
    "must " * 300,
    "solve calculate python code " * 100,
    "Is this review positive or negative? 'The battery died after two days.'",
]


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_hints_follow_ups_and_cue_counts_match_their_definitions(text: str) -> None:
    analysis = analyse(from_text(text))
    plain_hints = [HINT_BASE + i for i, (_, hint) in enumerate(HINTS) if hint(analysis)]
    assert hint_ids(analysis) == plain_hints
    assert_lexicon_counts(analysis)
    assert follows_up(analysis) == plain_follows_up(analysis)


def assert_lexicon_counts(analysis: Analysis) -> None:
    """The code, math, step and constraint counts are the plain frozenset definitions'."""
    words = analysis.words
    assert analysis.code_words == sum(word in CODE_LEXICON for word in words)
    assert analysis.math_words == sum(word in MATH_LEXICON for word in words)
    steps = sum(word in STEP_WORDS for word in words)
    constraints = sum(word in CONSTRAINT_WORDS for word in words)
    assert analysis.cues == steps + (constraints << LEXICON_BITS)


def plain_follows_up(analysis: Analysis) -> str | None:
    """rules.follows_up as it was, joining the first two words every time."""
    words = analysis.words
    if not words or analysis.signals.length > FOLLOWUP_CHARS or analysis.signals.passage:
        return None
    if not _THANKS_WORDS.isdisjoint(words):
        return None
    if words[0] in _CONTINUE_WORDS or b" ".join(words[:2]) in _CONTINUE_PAIRS:
        return "opener"
    return None if _ANAPHORA.isdisjoint(words) else "pointer"


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "Write a haiku"},
        {"role": "assistant", "content": "Write a haiku"},
        {"role": "system", "content": "   "},
        {"role": "system", "content": None},
        {"role": "tool", "content": [{"type": "image_url"}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ],
)
def test_a_single_message_builds_the_prompt_the_general_path_builds(
    message: dict[str, object],
) -> None:
    role_user = message["role"] == "user"
    text = content_text(message["content"])
    # The general path: the user turn, else the last message with text, else the empty prompt.
    want = from_text(text if role_user or text.strip() else "", has_tools=True)
    assert from_messages([message], has_tools=True) == want
