"""The shipped classifier reads the ask, not the paste, and classifies conversations: a pasted
passage, log or code block is evidence about the payload, the instruction says the task, and a
short follow-up inherits the task of the turn it follows. All prompts are the project's own."""

from __future__ import annotations

from typing import Any

import pytest

from triage.classify import Classifier
from triage.classify.prompt import from_text

RELEASE_NOTES = """## Retry budgets

Requests that fail with a 5xx are now retried inside the same model group before the gateway
moves along the fallback chain. The budget is per request, so one slow deployment cannot
multiply attempts across the chain.

```yaml
routes:
  code:
    retries: 2
    fallbacks: [cloud-large]
```

Existing configs keep working: `retries` defaults to 1. Streams are never retried after the
first byte has reached the client, because the client would see the text twice.
"""

HARBOUR = (
    "The harbour authority spent the spring dredging the eastern channel, which had silted up "
    "after two stormy winters. Fishing boats had been waiting for the tide to cross the bar, and "
    "the ferry company had cut its evening crossings. The work finished in June, a month late, "
    "and the first cruise ship of the season docked the following week. "
) * 3

WORKER_LOG = "\n".join(
    f"2026-03-0{day} 02:1{day}:07 ERROR sync-worker[{day * 7}] upstream closed the connection "
    f"after {day * 300}ms; retry {day}/3 failed with ConnectionResetError"
    for day in range(1, 9)
)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load()


@pytest.mark.parametrize(
    ("text", "task"),
    [
        # Pasted code, but the ask is a summary of the documentation.
        (
            f"Summarise these release notes in two bullet points.\n\n{RELEASE_NOTES}",
            "summarization",
        ),
        # Pasted code, but the ask is to pull fields out of it.
        (
            f"List every configuration key mentioned in this section.\n\n{RELEASE_NOTES}",
            "extraction",
        ),
        # A prose passage, and an ask for code about it at the end.
        (
            f"{HARBOUR}\n\nWrite a Python function that counts how often each word appears in "
            "the text above and returns the ten most common.",
            "code",
        ),
        # A pasted log, and a debugging ask.
        (f"{WORKER_LOG}\n\nWhy does the sync worker keep failing, and how do I fix it?", "code"),
        # A prose passage and a question answered from it.
        (f"{HARBOUR}\n\nWhy had the ferry company cut its evening crossings?", "closed_qa"),
    ],
)
def test_the_instruction_decides_the_task_not_the_pasted_material(
    classifier: Classifier, text: str, task: str
) -> None:
    assert classifier.classify_text(text).task == task


def test_split_keeps_the_closing_question_as_the_instruction() -> None:
    prompt = from_text(f"{HARBOUR}\n\nWhy had the ferry company cut its evening crossings?")
    assert prompt.instruction.endswith("Why had the ferry company cut its evening crossings?")
    assert "dredging" in prompt.body and "dredging" not in prompt.instruction


def conversation(first: str, answer: str, follow_up: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": first},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": follow_up},
    ]


@pytest.mark.parametrize(
    ("first", "answer", "follow_up", "task"),
    [
        (
            "Write a short poem about a lighthouse keeper's last night on duty.",
            "The lamp turns slow above the sea, the keeper counts the waves...",
            "make it shorter and sadder",
            "creative_writing",
        ),
        (
            "Two cyclists start 60 km apart and ride towards each other at 18 km/h and 12 km/h. "
            "When do they meet?",
            "They close the gap at 30 km/h, so they meet after 2 hours.",
            "what if the slower one rides 6 km/h faster?",
            "reasoning",
        ),
        (
            "Write a bash script that deletes log files older than seven days.",
            "You can use find /var/log -name '*.log' -mtime +7 -delete in a script.",
            "now do the same for Windows",
            "code",
        ),
    ],
)
def test_a_follow_up_inherits_the_task_of_the_turn_it_follows(
    classifier: Classifier, first: str, answer: str, follow_up: str, task: str
) -> None:
    result = classifier.classify(conversation(first, answer, follow_up))
    assert result.task == task
    assert result.reason == "followup"
    # Alone, the follow-up says too little to be classified like that.
    assert classifier.classify_text(follow_up).probabilities[task] < result.probabilities[task]


def test_a_new_request_after_a_code_turn_is_not_inherited(classifier: Classifier) -> None:
    messages = conversation(
        "Write a bash script that deletes log files older than seven days.",
        "You can use find /var/log -name '*.log' -mtime +7 -delete in a script.",
        "Write a haiku about the first snow falling on a quiet village.",
    )
    result = classifier.classify(messages)
    assert (result.task, result.reason) == ("creative_writing", "model")


def test_thanks_after_a_code_answer_stays_light(classifier: Classifier) -> None:
    messages = conversation(
        "Write a bash script that deletes log files older than seven days.",
        "```bash\nfind /var/log -name '*.log' -mtime +7 -delete\n```",
        "great, thanks a lot!",
    )
    assert classifier.classify(messages).tier == "light"
