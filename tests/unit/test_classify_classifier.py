"""Behaviour of the shipped classifier: model quality on clear prompts, the Classification
contract, which turn is classified, passages from tool results, and operator examples."""

from __future__ import annotations

import math
from typing import Any

import pytest

from triage.classify import DEFAULT_TIERS, TASKS, Classification, Classifier
from triage.classify.prompt import from_messages, from_text


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load()


def test_taxonomy_has_eleven_tasks_with_documented_tiers() -> None:
    assert len(TASKS) == len(set(TASKS)) == 11
    assert set(DEFAULT_TIERS) == set(TASKS)
    heavy = {task for task, tier in DEFAULT_TIERS.items() if tier == "heavy"}
    assert heavy == {"code", "reasoning"}
    assert DEFAULT_TIERS["creative_writing"] == "mid"


@pytest.mark.parametrize(
    ("text", "task"),
    [
        ("Write a short poem about autumn leaves in an empty park.", "creative_writing"),
        ("Give me ten ideas for a retirement party for my aunt.", "brainstorming"),
        ("Why do cats sleep so much during the day?", "open_qa"),
        ("Write a Python function that returns the median of a list.", "code"),
        ("Sort these into fruits and vegetables: pear, leek, fig, onion.", "classification"),
        ("If a train travels at 80 km/h for 2.5 hours, how far does it go?", "reasoning"),
        ("Pretend you are a pirate captain and welcome me aboard your ship.", "chat"),
    ],
)
def test_model_alone_gets_typical_prompts_right(
    classifier: Classifier, text: str, task: str
) -> None:
    result = classifier.classify_prompt(from_text(text), rules=False)
    assert (result.task, result.reason) == (task, "model")


def test_probabilities_cover_every_task_and_sum_to_one(classifier: Classifier) -> None:
    for text in ("hi", "Summarize this:\n\n" + "The council met on Tuesday. " * 20):
        result = classifier.classify_text(text)
        assert set(result.probabilities) == set(TASKS)
        assert math.isclose(sum(result.probabilities.values()), 1.0, rel_tol=1e-9)
        assert result.confidence == result.probabilities[result.task]
        assert result.tier == DEFAULT_TIERS[result.task]


def test_rule_hit_is_reported_with_its_name(classifier: Classifier) -> None:
    result = classifier.classify_text("Solve for x: 2x + 3 = 11")
    assert (result.task, result.reason, result.tier) == ("reasoning", "rule:arithmetic", "heavy")
    assert 0.9 <= result.confidence < 1.0


def test_difficulty_is_bounded_and_higher_for_long_multi_step_math(classifier: Classifier) -> None:
    hard = (
        "A farmer has 120 metres of fencing to enclose a rectangular field along a river, so "
        "only three sides need fencing. First write the area as a function of the width, then "
        "find the width that maximises it, prove it is a maximum, and finally compute the "
        "maximum area. Show every step and justify each one."
    )
    easy = classifier.classify_text("hi").difficulty
    hard_score = classifier.classify_text(hard).difficulty
    assert 0.0 <= easy < hard_score <= 1.0
    assert easy < 0.2


def test_the_last_user_turn_is_what_gets_classified(classifier: Classifier) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "hey there, good morning!"},
        {"role": "assistant", "content": "Great, thanks! What can I do for you?"},
        {"role": "user", "content": "Write a JavaScript function that tests if a number is prime."},
    ]
    assert classifier.classify(messages).task == "code"
    assert classifier.classify(messages[:2]).task == "chat"


def test_list_of_parts_content_is_read_and_non_text_parts_ignored(classifier: Classifier) -> None:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "Translate into French:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "'Good night and sleep well.'"},
    ]
    result = classifier.classify([{"role": "user", "content": content}])
    assert (result.task, result.reason) == ("rewrite", "rule:translate")


def test_none_content_and_empty_requests_do_not_crash(classifier: Classifier) -> None:
    assert classifier.classify([{"role": "user", "content": None}]).task in TASKS
    assert classifier.classify([]).task in TASKS


def test_tool_result_counts_as_attached_passage(classifier: Classifier) -> None:
    report = (
        "Quarterly report. Revenue rose 12 percent to 4.1 million euros, driven by strong sales "
        "in Germany and France, while costs fell slightly. The board expects growth to slow in "
        "the second half because of weaker demand in Asia. "
    ) * 3
    question = "What does the report say about revenue?"
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "1", "content": report},
    ]
    assert from_messages(messages).passage_chars == len(report)
    with_tool = classifier.classify(messages)
    without = classifier.classify_text(question)
    assert with_tool.probabilities["closed_qa"] > without.probabilities["closed_qa"] + 0.2


def test_with_examples_moves_a_borderline_prompt_to_the_operators_label(
    classifier: Classifier,
) -> None:
    prompt = "Give me a status update on the migration project."
    operator = {
        "extraction": [
            "Give me a status update on the billing project.",
            "Status update on the hiring plan, please.",
            "Give me the latest status of the office move.",
            "What's the status update on the data warehouse project?",
        ]
    }
    before = classifier.classify_text(prompt)
    adapted = classifier.with_examples(operator)
    after = adapted.classify_text(prompt)
    assert before.task != "extraction"
    assert after.task == "extraction"
    assert after.probabilities["extraction"] > before.probabilities["extraction"]
    # The original is untouched: with_examples works on a copy.
    assert classifier.classify_text(prompt) == before


def test_with_examples_rejects_an_unknown_label_by_name(classifier: Classifier) -> None:
    with pytest.raises(ValueError, match="translation"):
        classifier.with_examples({"translation": ["Say hello in German"]})


def test_classification_is_immutable(classifier: Classifier) -> None:
    result = classifier.classify_text("hello there")
    assert isinstance(result, Classification)
    with pytest.raises(AttributeError):
        result.task = "code"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.probabilities["code"] = 1.0  # type: ignore[index]
