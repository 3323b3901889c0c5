"""The classifier's shortcuts to a result equal the plain steps they replace.

linear.probabilities is softmax(logits) in one frame for the usual case (2..SMALL_SUM ids, no
context turn); apply_rules answers None at once when every rule's own first gate fails; the
model decision builds its Classification without a call to _result. Each is held to the plain
definition, float for float, on random models and hostile prompts.
"""

from __future__ import annotations

import random

import pytest

from triage.classify import Classifier
from triage.classify.charclass import class_counts
from triage.classify.difficulty import difficulty
from triage.classify.features import SIGNAL_SCAN, analyse, signals
from triage.classify.linear import (
    LIMIT,
    SHIFTS,
    SMALL_SUM,
    TABLE_MIN,
    LinearModel,
    pack,
    probabilities,
    softmax,
)
from triage.classify.prompt import Prompt, from_messages, from_text
from triage.classify.rules import _HITS, apply_rules
from triage.classify.taxonomy import TASKS


def test_probabilities_equal_softmax_of_the_logits() -> None:
    rng = random.Random(16)
    rows = {b: pack([rng.uniform(-LIMIT, LIMIT) for _ in SHIFTS]) for b in range(1, 3000)}
    model = LinearModel(rows=rows, bias=tuple(rng.uniform(-40, 40) for _ in SHIFTS))
    unseen = range(3000, 6000)
    for size in (0, 1, 2, 3, 69, SMALL_SUM - 1, SMALL_SUM, SMALL_SUM + 1, 600):
        for _ in range(5):
            ids = set(rng.sample(range(1, 3000), size // 2))
            ids.update(rng.sample(unseen, size - len(ids)))
            for context in (set(), set(rng.sample(range(1, 3000), 7))):
                want = softmax(model.logits(ids, context))
                assert probabilities(model, ids, context) == want


def test_probabilities_with_an_id_past_the_table_read_slot_by_slot() -> None:
    model = LinearModel(rows={5: pack([1.0] * len(SHIFTS))}, bias=(0.0,) * len(SHIFTS))
    for ids in ({5, TABLE_MIN + 10}, {5, 7, TABLE_MIN * 3}, {TABLE_MIN + 1, TABLE_MIN + 2}):
        assert probabilities(model, ids, ()) == softmax(model.logits(ids))


def rule_texts() -> list[str]:
    rng = random.Random(7)
    parts = [
        "translate this into French",
        "Translate to German: hello",
        "fix this crash",
        "why does it fail",
        "what is 12 * 7?",
        "how many apples if I have 3 and buy 4?",
        "summarize",
        "tl;dr",
        "now make it faster",
        "请翻译成英文",
        "这是什么",
        "Is this review positive or negative?",
        "Error: boom\nTraceback",
        "x = 1;",
    ]
    texts = list(parts)
    for _ in range(300):
        texts.append(" ".join(rng.choice(parts) for _ in range(rng.choice((1, 2, 3)))))
    return texts


def requests(text: str) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": text}],
        [{"role": "user", "content": text + "\n\n" + "A long passage of words. " * 12}],
        [
            {"role": "user", "content": "write code"},
            {"role": "assistant", "content": "```python\ndef f(): pass\n```"},
            {"role": "user", "content": text},
        ],
        [{"role": "user", "content": "log:\n" + "Error: x failed 42\n" * 30 + text}],
    ]


@pytest.mark.parametrize("text", rule_texts())
def test_apply_rules_is_the_first_rule_that_fires(text: str) -> None:
    for messages in requests(text):
        analysis = analyse(from_messages(messages))
        first = next((hit for rule, hit in _HITS if rule(analysis)), None)
        assert apply_rules(analysis) == first


def test_the_gate_does_not_hide_any_rule() -> None:
    """Each rule fires on some prompt here, so the gate was passed where it had to be."""
    fired = set()
    for text in rule_texts():
        for messages in requests(text):
            hit = apply_rules(analyse(from_messages(messages)))
            if hit is not None:
                fired.add(hit.name)
    assert fired == {name for _, hit in _HITS for name in [hit.name]}


def test_a_model_decision_is_the_plain_result() -> None:
    classifier = Classifier.load()
    for text in rule_texts()[:80]:
        analysis = analyse(from_text(text))
        probs = classifier.probabilities(analysis)
        result = classifier._decide(analysis, probs, "model")
        best = TASKS.index(result.task)
        assert result.probabilities == dict(zip(TASKS, probs, strict=True))
        assert result.confidence == probs[best]
        assert result.difficulty == difficulty(analysis, result.task)
        assert result.reason in ("model", "heavy_head")
        assert type(result).__name__ == "Classification"
        assert result._fields == (
            "task",
            "probabilities",
            "confidence",
            "tier",
            "difficulty",
            "reason",
        )


def plain_signal_counts(prompt: Prompt) -> tuple[int, int, int, int]:
    """(digits, math_chars, code_chars, text_digits) by deleting translates, as defined."""
    instruction = prompt.instruction.encode()
    sample = prompt.text[:SIGNAL_SCAN]
    raw = sample.encode()
    digits = len(instruction) - len(instruction.translate(None, b"0123456789"))
    math_ops = len(instruction) - len(instruction.translate(None, b"0123456789+*/=^%\xc3\x97\xb7"))
    scale = len(prompt.text) / len(sample) if sample else 0.0
    code = round((len(raw) - len(raw.translate(None, b"{}();<>[]=_"))) * scale)
    return digits, 2 * math_ops - digits, code, len(raw) - len(raw.translate(None, b"0123456789"))


def test_signal_counts_equal_the_deleting_translates() -> None:
    rng = random.Random(42)
    alphabet = "0123456789+*/=^%×÷{}();<>[]_ aé€中\n?,.'\"" + "".join(map(chr, range(32, 127)))
    texts = ["", " ", "=", "0", "×", "÷", "é", "{}", "a" * 2000, "1=2" * 600]
    for _ in range(400):
        size = rng.choice((1, 5, 40, 300, 1500, 5000))
        texts.append("".join(rng.choice(alphabet) for _ in range(size)))
    for text in texts:
        for prompt in (from_text(text), from_text("Look at this:\n" + text)):
            sig = signals(prompt)
            want = plain_signal_counts(prompt)
            assert (sig.digits, sig.math_chars, sig.code_chars, sig.text_digits) == want
        raw = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 9, 200))))
        digits, equals, operators, punct = class_counts(raw)
        assert digits == len(raw) - len(raw.translate(None, b"0123456789"))
        assert digits + equals + operators == len(raw) - len(
            raw.translate(None, b"0123456789+*/=^%\xc3\x97\xb7")
        )
        assert equals + punct == len(raw) - len(raw.translate(None, b"{}();<>[]=_"))


@pytest.mark.parametrize("role", ["user", "system", "assistant", "tool", "developer"])
def test_classify_single_is_classify_of_the_one_message(role: str) -> None:
    classifier = Classifier.load()
    contents: list[object] = [None, "", "   ", [], [{"type": "image_url", "image_url": {}}]]
    contents += [[{"type": "text", "text": text}, {"text": "more"}] for text in rule_texts()[:6]]
    contents += rule_texts()[:60]
    for content in contents:
        for tools, response_format in ((False, False), (True, False), (False, True)):
            flags = {"has_tools": tools, "has_response_format": response_format}
            want = classifier.classify([{"role": role, "content": content}], **flags)
            assert classifier.classify_single(content, **flags) == want
