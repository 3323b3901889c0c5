"""Each high-precision rule fires on a clear case and stays quiet on a near miss."""

from __future__ import annotations

import pytest

from triage.classify.features import analyse
from triage.classify.prompt import from_messages, from_text
from triage.classify.rules import HINT_BASE, HINTS, apply_rules, follows_up, hint_ids

PASSAGE = (
    "The Harlow Canal was built between 1792 and 1803 to carry coal from the upper valley "
    "to the port. It is 56 kilometres long with 31 locks. Railways took its trade after 1851, "
    "and commercial traffic ended in 1938; volunteers reopened it for leisure boats in 2004."
)

CRASH_LOG = "\n".join(
    f"09:1{n}:55 importer[{n}] ERROR row {n * 40}: ValueError: could not parse date"
    for n in range(6)
)


def rule_for(text: str) -> str | None:
    hit = apply_rules(analyse(from_text(text)))
    return None if hit is None else hit.name


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"{CRASH_LOG}\n\nWhy does the importer crash, and how do I fix it?", "debug_paste"),
        ("Translate into Spanish: 'The library opens at nine.'", "translate"),
        (f"Summarize this in two sentences.\n\n{PASSAGE}", "summarize"),
        ("What is 17 * 23 + 4?", "arithmetic"),
        ("Solve for x: 3x + 7 = 22", "arithmetic"),
        ("A shop sells 12 pens for 3 euros. How much do 40 pens cost?", "word_problem"),
        ("请总结以下文章。\n\n" + "今天天气很好，我们去公园散步，看到了很多花。" * 12, "summarize"),
        ("请把这句话翻译成英文：我明天去北京。", "translate"),
    ],
)
def test_rule_fires_on_clear_case(text: str, rule: str) -> None:
    assert rule_for(text) == rule


@pytest.mark.parametrize(
    "text",
    [
        # A question about a pasted log, or prose editing of one, is not debugging.
        f"{CRASH_LOG}\n\nAt what time did the importer stop?",
        f"Fix the spelling in this incident note:\n\n{CRASH_LOG}",
        # A fence around prose is not code.
        "Make this rhyme better:\n```\nRoses are red\nthe sky is wide\n```",
        # Talking about programming languages is not code syntax.
        "Should I learn Python or JavaScript first?",
        # Asking about translation is not a request to translate.
        "Why is poetry so hard to translate into other languages?",
        # "Summary" without a passage, or as a noun about the passage, is left to the model.
        "Summarize the plot of Hamlet.",
        f"Given this summary of the canal's history, when did it reopen?\n\n{PASSAGE}",
        # Years and date ranges are not arithmetic.
        "What happened in Europe between 1914 - 1918?",
        "Is 24/7 support included in the basic plan?",
        # A single quantity, or quantities inside an attached passage, are not a word problem.
        "How many moons does Jupiter have?",
        f"How many locks does the canal have?\n\n{PASSAGE}",
        # A Chinese question that is neither a summary nor a translation request.
        "请问北京今天的天气怎么样？",
    ],
)
def test_rule_stays_quiet_on_near_miss(text: str) -> None:
    assert rule_for(text) is None


def hints_for(text: str) -> set[str]:
    fired = hint_ids(analyse(from_text(text)))
    return {name for index, (name, _) in enumerate(HINTS) if HINT_BASE + index in fired}


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Why does this fail?\n```python\nprint(items[0]['name'])\n```", "code_fence"),
        ("What does this do?\n\ndef total(xs):\n    return sum(xs)", "code_syntax"),
        ("Fix my query: SELECT name, email FROM users WHERE age > 30 ORDER BY name", "code_syntax"),
    ],
)
def test_code_markers_are_hints_for_the_model_not_verdicts(text: str, hint: str) -> None:
    # Documentation with code in it gets summarised too, so code markers never decide alone.
    assert hint in hints_for(text)
    assert rule_for(text) is None


@pytest.mark.parametrize(
    ("text", "how"),
    [
        ("now make it faster", "opener"),
        ("what about in Rust?", "opener"),
        ("what if it rains twice as much?", "opener"),
        ("shorter please", "pointer"),
        ("Can you explain that again?", "pointer"),
        ("great, thanks!", None),
        ("Write a limerick about a goose who runs a bakery in Leeds.", None),
        ("Summarize this:\n\n" + PASSAGE, None),
    ],
)
def test_follow_up_is_a_short_turn_that_continues_or_points_back(
    text: str, how: str | None
) -> None:
    assert follows_up(analyse(from_text(text))) == how


def test_code_followup_needs_code_in_the_previous_turn() -> None:
    code_answer = {"role": "assistant", "content": "```js\nconst f = (n) => n * 2;\n```"}
    prose_answer = {"role": "assistant", "content": "Paris is lovely in spring."}
    follow_up = {"role": "user", "content": "now make it work for negative numbers"}

    def rule(messages: list[dict[str, str]]) -> str | None:
        hit = apply_rules(analyse(from_messages(messages)))
        return None if hit is None else hit.name

    assert rule([code_answer, follow_up]) == "code_followup"
    assert rule([prose_answer, follow_up]) is None
    assert rule([code_answer, {"role": "user", "content": "great, thanks!"}]) is None
