"""The classifier's token memos and stride-unpacked character grams change speed, never ids.

A Classifier keeps bounded memos (token -> hashed id) so a known word or 4-byte gram costs one
dict lookup; the character grams of an instruction start are cut by struct strides instead of a
slice per window. Each test pits them against the plain definition on hostile input, and checks
that a flood of distinct tokens keeps every memo within its cap.
"""

from __future__ import annotations

import random
from zlib import crc32

import pytest

from triage.classify import Classifier
from triage.classify.features import (
    CHAR_WINDOW,
    MASK,
    SEED_BODY,
    SEED_CHAR,
    SEED_TAIL,
    _char_grams,
    analyse,
    new_memos,
    signals,
)
from triage.classify.memo import GramMemo
from triage.classify.prompt import Prompt, from_messages, from_text

ALPHABET = "aZz_09?!:.,;-` \t\n\r\x0b\x0c\x1c\x85\u2028éßİKÀ€中文\U0001f600'\"(){}<>=#"


def hostile_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "a", "ab", "abc", "abcd", "é", "`", "``", "```", "x```y", "`` `"]
    texts += ["w" * size for size in range(CHAR_WINDOW + 4)]
    for _ in range(count):
        size = rng.choice((1, 3, 7, 40, 300, 2000))
        texts.append("".join(rng.choice(ALPHABET) for _ in range(size)))
    return texts


def plain_char_grams(text: str) -> set[int]:
    """The definition: every 4-byte window of " " + squeezed start + " ", hashed and masked."""
    squeezed = b" " + b" ".join(text[: CHAR_WINDOW * 2].lower().encode().split())[:CHAR_WINDOW]
    squeezed += b" "
    windows = (squeezed[start : start + 4] for start in range(len(squeezed) - 3))
    return {crc32(window, SEED_CHAR) & MASK for window in windows}


TEXTS = hostile_texts(120, seed=1616)


@pytest.mark.parametrize("text", TEXTS)
def test_stride_char_grams_are_every_window_once(text: str) -> None:
    memo = GramMemo(SEED_CHAR, MASK)
    assert set(_char_grams(text, memo)) == plain_char_grams(text)
    # Warm: every gram now comes from the memo.
    assert set(_char_grams(text, memo)) == plain_char_grams(text)


@pytest.mark.parametrize("text", TEXTS)
def test_fence_signal_is_a_triple_backtick_anywhere(text: str) -> None:
    for turn in (text, "Explain this:\n" + text, text + "\n" * 3 + "x" * 500 + "```"):
        assert signals(from_text(turn)).fence == ("```" in from_text(turn).text)


def prompts_of(text: str, rng: random.Random) -> list[Prompt]:
    other = "".join(rng.choice(ALPHABET) for _ in range(rng.choice((5, 300, 900))))
    return [
        from_text(text),
        from_text("Summarise this:\n" + text + "\n" + other),
        from_text(other + "\n" + text + "\nWhat is wrong here?"),
        from_messages(
            [
                {"role": "user", "content": other},
                {"role": "assistant", "content": text},
                {"role": "user", "content": text[:50] or "why?"},
            ]
        ),
        from_messages(
            [
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": None},
                {"role": "tool", "content": text, "tool_call_id": "t"},
            ]
        ),
    ]


@pytest.mark.parametrize("cap", [0, 3, 1 << 14])
def test_memoised_analysis_has_the_ids_of_a_fresh_one(cap: int) -> None:
    rng = random.Random(cap)
    memos = new_memos(cap)
    for _ in range(2):  # cold memos, then warm (or churned, for the tiny caps)
        for text in TEXTS:
            for prompt in prompts_of(text, rng):
                fresh, memoised = analyse(prompt), analyse(prompt, memos)
                assert memoised.ids == fresh.ids
                assert memoised.context_ids == fresh.context_ids
                assert memoised.words == fresh.words
                assert memoised.body_words == fresh.body_words
    for memo in (memos.word, memos.char, memos.body, memos.tail):
        assert len(memo) <= cap


def test_a_flood_of_distinct_tokens_keeps_every_memo_within_its_cap() -> None:
    cap = 64
    memos = new_memos(cap)
    rng = random.Random(7)
    seen = 0
    for _ in range(300):
        words = [f"tok{rng.getrandbits(48):x}" for _ in range(40)]
        body = " ".join(words)
        prompt = from_messages(
            [
                {"role": "user", "content": " ".join(words[:20])},
                {"role": "assistant", "content": body},
                {"role": "user", "content": f"{body}\n{body} {body}\n{body}\n{body}\n{body}"},
            ]
        )
        analysis = analyse(prompt, memos)
        assert analysis.ids == analyse(prompt).ids
        assert analysis.context_ids == analyse(prompt).context_ids
        for memo in (memos.word, memos.char, memos.body, memos.tail):
            assert len(memo) <= cap
            seen = max(seen, len(memo))
    assert seen == cap  # the floods did fill them: the bound was tested, not idle
    for memo, seed in ((memos.body, SEED_BODY), (memos.tail, SEED_TAIL), (memos.word, 0)):
        assert all(value == crc32(token, seed) & MASK for token, value in memo.items())


def test_classifications_do_not_drift_while_the_memos_churn() -> None:
    classifier = Classifier.load()
    asks = [
        [{"role": "user", "content": "Is this review positive or negative? 'Died in 2 days.'"}],
        [{"role": "user", "content": "Write a Python function that merges two sorted lists."}],
        [
            {"role": "user", "content": "def f(x): return x*2"},
            {"role": "assistant", "content": "It doubles x."},
            {"role": "user", "content": "now make it faster"},
        ],
    ]
    first = [classifier.classify(messages) for messages in asks]
    rng = random.Random(3)
    for _ in range(1200):  # ~38,000 distinct grams: the gram memo is emptied and refilled
        noise = " ".join(f"{rng.getrandbits(40):x}" for _ in range(30))
        classifier.classify([{"role": "user", "content": f"{noise}\n\n{noise}"}])
    assert [classifier.classify(messages) for messages in asks] == first
    fresh = Classifier.load()
    assert [fresh.classify(messages) for messages in asks] == first
