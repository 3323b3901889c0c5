"""The analysis's feature ids equal their plain definition, however they are computed.

features.analyse takes each word's unigram id and bigram seed from per-token memos, derives the
lead ids from masked CRCs (the mask distributes over xor) and so on; these tests hold every id
set to the definition written out with one crc32 per token, on hostile text, with cold, warm and
churning memos, and check the bigram-seed memo stays within its cap.
"""

from __future__ import annotations

import random
from itertools import chain, repeat
from operator import xor
from zlib import crc32

import pytest

from tests.unit.test_classify_cheap_paths import assert_lexicon_counts
from triage.classify.features import (
    BODY_SAMPLE,
    CHAR_WINDOW,
    MASK,
    SEED_BIGRAM,
    SEED_BODY,
    SEED_CHAR,
    SEED_LEAD,
    SEED_TAIL,
    SIGNAL_SCAN,
    TAIL_LINE,
    Analysis,
    analyse,
    dense_ids,
    new_memos,
    word_cues,
    words_of,
)
from triage.classify.prompt import Prompt, from_messages, from_text

ALPHABET = "aZz_09?!:.,;-` \t\n\r\x0b\x0c\x85éßİKÀ€中文\U0001f600'\"(){}<>=#"
WORDS = ("write", "a", "the", "what", "if", "now", "code", "python", "?", "x", "é", "not")


def plain_ids(prompt: Prompt, analysis: Analysis) -> set[int]:
    """Every hashed and dense id of `prompt`, one crc32 per token (the pre-memo code)."""
    words = words_of(prompt.instruction)
    unigrams = list(map(crc32, words))
    bigrams = list(map(crc32, words[1:], map(xor, unigrams, repeat(SEED_BIGRAM))))
    lead = [unigrams[0] ^ SEED_LEAD, bigrams[0] ^ SEED_LEAD] if bigrams else unigrams[:1]
    ids = {crc & MASK for crc in chain(unigrams, bigrams, lead)}
    start = prompt.instruction[: CHAR_WINDOW * 2].lower().encode().split()
    squeezed = b" " + b" ".join(start)[:CHAR_WINDOW] + b" "
    ids.update(crc32(squeezed[at : at + 4], SEED_CHAR) & MASK for at in range(len(squeezed) - 3))
    body = prompt.body or prompt.tool_text
    ids.update(crc32(word, SEED_BODY) & MASK for word in words_of(body[:BODY_SAMPLE]))
    if len(prompt.body) >= 2 * TAIL_LINE:
        cut = prompt.body.rfind("\n", len(prompt.body) - TAIL_LINE)
        tail = words_of(prompt.body[cut + 1 :]) if cut > 0 else []
        ids.update(crc32(word, SEED_TAIL) & MASK for word in tail)
    ids.update(
        dense_ids(
            prompt,
            analysis.signals,
            analysis.code_words,
            analysis.math_words,
            prompt.body[:SIGNAL_SCAN],
        )
    )
    return ids


def texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = ["", " ", "a", "?", "a b", "write", "write a", "now now", "a a a a", "x? y! z:"]
    for _ in range(count):
        if rng.random() < 0.5:
            size = rng.choice((1, 2, 3, 8, 40))
            out.append(" ".join(rng.choice(WORDS) for _ in range(size)))
        else:
            size = rng.choice((1, 3, 7, 40, 300, 2000))
            out.append("".join(rng.choice(ALPHABET) for _ in range(size)))
    return out


TEXTS = texts(150, seed=2026)


def prompts(text: str) -> list[Prompt]:
    return [
        from_text(text),
        from_text("Summarise this:\n" + text + "\n" + "word " * 120),
        from_text("log line\n" * 60 + text + "\nWhat is wrong here?"),
        from_messages(
            [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": text},
                {"role": "user", "content": text[:60] or "why?"},
            ]
        ),
    ]


@pytest.mark.parametrize("cap", [0, 2, 1 << 14])
def test_ids_equal_the_plain_definition_with_any_memo(cap: int) -> None:
    memos = new_memos(cap)
    for _ in range(2):  # cold memos, then warm (or churning, for the tiny cap)
        for text in TEXTS:
            for prompt in prompts(text):
                analysis = analyse(prompt, memos)
                assert analysis.ids == plain_ids(prompt, analysis), prompt
                context = {crc32(word) & MASK for word in words_of(prompt.context)}
                assert analysis.context_ids == context
    assert len(memos.pair) <= cap
    assert all(value == crc32(token) ^ SEED_BIGRAM for token, value in memos.pair.items())


def test_the_bigram_seed_memo_stays_within_its_cap_under_a_flood() -> None:
    cap = 32
    memos = new_memos(cap)
    rng = random.Random(11)
    for _ in range(200):
        text = " ".join(f"w{rng.getrandbits(40):x}" for _ in range(25))
        prompt = from_text(text)
        analysis = analyse(prompt, memos)
        assert analysis.ids == plain_ids(prompt, analysis)
        assert len(memos.pair) <= cap
    assert len(memos.pair) > 0


def test_lexicon_counts_with_and_without_lexicon_words() -> None:
    rng = random.Random(5)
    vocab = ["python", "sum", "then", "must", "not", "the", "cat", "?", "code", "x", "steps"]
    for _ in range(500):
        words = [rng.choice(vocab) for _ in range(rng.choice((0, 1, 2, 5, 30)))]
        analysis = analyse(from_text(" ".join(words)))
        assert_lexicon_counts(analysis)
        assert word_cues(analysis.words) == analysis.cues
