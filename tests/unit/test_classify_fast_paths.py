"""The classifier's fast paths say exactly what the plain versions they replace say.

Speed work (issue 16) swapped a regex tokenizer for translate+split, a dict of rows for a tuple
indexed by bucket, per-cue searches for gated ones and anchor scans for a gated loop. Each test
here pits a fast path against its plain definition on hostile input. (bench/classify_identity.py
checks whole classifications against the previous commit over every shared prompt.)
"""

from __future__ import annotations

import gc
import math
import random

import pytest

from triage.classify import Classifier, store
from triage.classify.classifier import feature_ids
from triage.classify.features import (
    _MARKER_GATES,
    _REASONING_CUES,
    _TOKEN,
    FAILURE_MARKERS,
    _cues,
    analyse,
    has_failure_marker,
    words_of,
)
from triage.classify.linear import (
    CONTEXT_WEIGHT,
    FIELD_MASK,
    OFFSET,
    QSCALE,
    SHIFTS,
    TABLE_MIN,
    ZERO_ROW,
    BucketRows,
    LinearModel,
    pack,
)
from triage.classify.prompt import from_text
from triage.classify.rules import _CODE_LINES, _CODE_NEEDS

ALPHABET = "aZz_09?!:.,;- \t\n\r\x0b\x0c\x1c\x85\u2028éßİKÀ€中文\U0001f600'\"(){}<>=#"


def hostile_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = ["", "?", "::", "a?b!c:d", "İstanbul KELVIN", "12,5 x_y", "?!:" * 40]
    for _ in range(count):
        size = rng.choice((1, 5, 40, 300))
        texts.append("".join(rng.choice(ALPHABET) for _ in range(size)))
    return texts


@pytest.mark.parametrize("text", hostile_texts(150, seed=16))
def test_words_of_matches_the_regex_tokenizer(text: str) -> None:
    reference = _TOKEN.findall(
        text.lower().encode().translate(bytes.maketrans(b"123456789", b"0" * 9))
    )
    assert words_of(text) == reference


@pytest.mark.parametrize(
    "text",
    [
        *hostile_texts(60, seed=3),
        "please explain your answer step by step, and estimate",
        "step-by-step: show your work. your reasoning?",
        "steps yours estimated",
    ],
)
def test_gated_cue_count_matches_counting_every_cue(text: str) -> None:
    lowered = text.lower()
    assert _cues(lowered) == min(sum(cue in lowered for cue in _REASONING_CUES), 2)


@pytest.mark.parametrize(
    "text",
    [
        *hostile_texts(40, seed=5),
        *(f"x{marker}y" for marker in FAILURE_MARKERS),
        "ERRor FATAl panic Traceback(",
        "E T F : failed",
    ],
)
def test_gated_failure_markers_match_searching_every_marker(text: str) -> None:
    assert has_failure_marker(text) == any(marker in text for marker in FAILURE_MARKERS)


def test_marker_gates_cover_every_marker_and_sit_inside_it() -> None:
    grouped = [marker for _, markers in _MARKER_GATES for marker in markers]
    assert sorted(grouped) == sorted(FAILURE_MARKERS)
    assert all(gate in marker for gate, markers in _MARKER_GATES for marker in markers)


CODE_PIECES = ("(", ")", "{", "}", "=", ";", "<", ">", " ", "\t", "x", "_1", "/", ".", ":", '"')


KNOWN_CODE = {
    4: "function add(a, b) {",
    5: "  const total = a + b;",
    8: "fn main() {",
    10: "items.map(x => {",
    11: '<div class="box">',
}


@pytest.mark.parametrize("group", range(len(_CODE_LINES)))
def test_code_pattern_never_matches_without_its_gate_characters(group: int) -> None:
    (anchors, pattern), needs = _CODE_LINES[group], _CODE_NEEDS[group]
    rng = random.Random(group)
    for _ in range(3000):
        pieces = [rng.choice(anchors), *rng.choices(CODE_PIECES, k=rng.randrange(1, 9))]
        if rng.random() < 0.5:
            pieces.insert(rng.randrange(len(pieces) + 1), rng.choice(anchors))
        line = rng.choice(("", "  ")) + " ".join(pieces[:1]) + "".join(pieces[1:])
        if pattern.search(line):
            assert all(char in line for char in needs), (line, needs)
    # Lines that do match each gated pattern, so the property is not vacuous.
    known = KNOWN_CODE.get(group)
    if needs:
        assert known is not None and pattern.search(known)


def reference_logits(
    rows: dict[int, int], bias: tuple[float, ...], ids: set[int], context: set[int]
) -> list[float]:
    """The scoring as it was before the tuple table: a dict, known rows only."""
    hits = [rows[i] for i in ids if i in rows]
    total, offset = sum(hits), len(hits) * OFFSET
    scale = 1.0 / (math.sqrt(len(ids)) * QSCALE)
    scores = [
        b + scale * (((total >> s) & FIELD_MASK) - offset)
        for b, s in zip(bias, SHIFTS, strict=True)
    ]
    if context:
        ctx = [rows[i] for i in context if i in rows]
        ctx_total, ctx_offset = sum(ctx), len(ctx) * OFFSET
        scores = [
            score + CONTEXT_WEIGHT * scale * (((ctx_total >> s) & FIELD_MASK) - ctx_offset)
            for score, s in zip(scores, SHIFTS, strict=True)
        ]
    return scores


def test_table_scores_like_a_dict_of_known_rows_for_any_ids() -> None:
    rng = random.Random(7)
    rows = {
        rng.randrange(TABLE_MIN + 500): pack([rng.uniform(-3, 3) for _ in SHIFTS])
        for _ in range(3000)
    }
    bias = tuple(rng.uniform(-1, 1) for _ in SHIFTS)
    model = LinearModel(rows=rows, bias=bias)
    known = list(rows)
    for _ in range(300):
        # Known and unseen buckets, one id alone, and ids past the table's end.
        ids = set(rng.sample(known, rng.randrange(0, 40)))
        ids.update(rng.randrange(TABLE_MIN + 1000) for _ in range(rng.randrange(0, 40)))
        context = set(rng.sample(known, rng.randrange(0, 5)))
        if not ids:
            assert model.logits(ids, context) == list(bias)
            continue
        want = reference_logits(rows, bias, ids, context)
        assert model.logits(ids, context) == pytest.approx(want, rel=0, abs=1e-12)


def test_bucket_rows_is_the_mapping_it_replaces() -> None:
    rows = {0: pack([0.5] * 11), 17: pack([-1.0] * 11), TABLE_MIN + 3: pack([2.0] * 11)}
    table = BucketRows(list(rows), list(rows.values()))
    assert len(table) == 3 and list(table) == sorted(rows) and dict(table) == rows
    for missing in (1, -1, TABLE_MIN + 2, 10**9):
        assert missing not in table
        with pytest.raises(KeyError):
            table[missing]
    # A stored all-zero row is still a row (identity, not value, marks an empty slot).
    zero = int.from_bytes(ZERO_ROW.to_bytes(55, "little"), "little")
    assert 5 in BucketRows([5], [zero])
    # Full garbage collections do not walk the million slots once they have been seen once.
    gc.collect()
    assert not gc.is_tracked(table.slots)


def test_shipped_weights_round_trip_byte_for_byte() -> None:
    data = store.encode(store.read())
    assert store.encode(store.decode(data)) == data


def test_adapted_copy_keeps_scoring_unseen_and_known_buckets() -> None:
    shipped = Classifier.load()
    adapted = shipped.with_examples({"code": ["zorglub the frobnicator quux"]})
    assert set(adapted.model.rows) >= set(shipped.model.rows)
    rows = dict(adapted.model.rows)
    for text in ("zorglub the frobnicator quux", "hi", "Why is the sky blue?"):
        ids = feature_ids(analyse(from_text(text)))
        want = reference_logits(rows, adapted.model.bias, ids, set())
        assert adapted.model.logits(ids) == pytest.approx(want, rel=0, abs=1e-12)
