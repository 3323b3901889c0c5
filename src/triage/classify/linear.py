"""The linear (softmax) model over hashed features, stored as packed integers for speed.

Owns the weight representation. Each bucket's 11 class weights are quantised to integers and
packed into one Python int (FIELD_BITS bits per class, each offset to be non-negative). Scoring a
prompt is then one C-level `sum()` over the active buckets' ints followed by unpacking 11
fields, instead of 11 additions per feature in Python. Quantisation happens once, when a model
is built, so a saved and reloaded model scores bit-for-bit the same.

The rows live in a BucketRows: a tuple indexed by bucket, so fetching every active row is one
C-level `itemgetter` call. On real traffic (a different prompt each time) the rows are not in
the CPU cache, and a tuple slot is one memory access where an int-keyed dict lookup is three or
four (index, entry, key object): over the shared prompt corpora that is ~15% of a classification.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import is_not, itemgetter
from struct import Struct

from triage.classify.taxonomy import TASKS

N_CLASSES = len(TASKS)
FIELD_BITS = 40
FIELD_MASK = (1 << FIELD_BITS) - 1
QSCALE = 1 << 16
OFFSET = 1 << 23
ROW_BYTES = FIELD_BITS * N_CLASSES // 8
LIMIT = (OFFSET - 1) / QSCALE
SHIFTS = tuple(FIELD_BITS * index for index in range(N_CLASSES))
# Context-turn words count this much relative to words of the classified turn.
CONTEXT_WEIGHT = 0.3


def pack(row: Sequence[float]) -> int:
    """Quantise and pack one bucket's class weights."""
    packed = 0
    for index, weight in enumerate(row):
        clamped = min(max(weight, -LIMIT), LIMIT)
        packed |= (round(clamped * QSCALE) + OFFSET) << (FIELD_BITS * index)
    return packed


# The packed row of a bucket the model has never seen: every class weight 0.
ZERO_ROW = sum(OFFSET << shift for shift in SHIFTS)


# Rows cover at least the hashed buckets (features.BUCKETS) and the dense slots above them.
TABLE_MIN = (1 << 20) + 256


class BucketRows(Mapping[int, int]):
    """Packed rows by bucket, stored as a tuple with ZERO_ROW where the model has no row.

    A read-only Mapping (what training, adapting and saving use) over the tuple that scoring
    indexes. A tuple of ints is untracked by the garbage collector after its first collection,
    so full collections do not walk its million slots.
    """

    __slots__ = ("_count", "slots")

    def __init__(self, buckets: Sequence[int], rows: Iterable[int]) -> None:
        """Row `rows[i]` for bucket `buckets[i]`; each bucket once (a dict's keys, a file's)."""
        filled = [ZERO_ROW] * max(TABLE_MIN, max(buckets, default=0) + 1)
        for bucket, row in zip(buckets, rows, strict=True):
            filled[bucket] = row
        self.slots: tuple[int, ...] = tuple(filled)
        self._count = len(buckets)

    @classmethod
    def of(cls, rows: Mapping[int, int]) -> BucketRows:
        return rows if isinstance(rows, BucketRows) else cls(list(rows), list(rows.values()))

    def __getitem__(self, bucket: int) -> int:
        row = self.slots[bucket] if 0 <= bucket < len(self.slots) else ZERO_ROW
        if row is ZERO_ROW:
            raise KeyError(bucket)
        return row

    def __iter__(self) -> Iterator[int]:
        return compress(count(), map(is_not, self.slots, repeat(ZERO_ROW)))

    def __len__(self) -> int:
        return self._count

    def total(self, ids: Collection[int]) -> int:
        """Sum of the rows of `ids` (non-negative), unseen buckets counting as ZERO_ROW."""
        if len(ids) == 1:
            return self.slots[next(iter(ids))]
        try:
            return sum(itemgetter(*ids)(self.slots))
        except IndexError:  # an id past the table: slot by slot
            return sum(map(self.get, ids, repeat(ZERO_ROW)))


# A row's field is below 2 * OFFSET = 2**24, so each field of a sum of at most SMALL_SUM rows
# fits in the field's low 32 bits: one struct read of the sum's bytes gives all eleven (skipping
# each field's fifth byte) instead of a shift and a mask of the whole sum per class.
SMALL_SUM = 1 << (32 - 24)
_LOW_FIELDS = Struct("<" + "Ix" * N_CLASSES)


def fields_of(total: int, count: int) -> Sequence[int]:
    """The class fields (still offset) of the sum of `count` packed rows."""
    if count <= SMALL_SUM:
        return _LOW_FIELDS.unpack(total.to_bytes(ROW_BYTES, "little"))
    return [(total >> shift) & FIELD_MASK for shift in SHIFTS]


def unpack_sum(total: int, count: int) -> list[float]:
    """Class weight sums from the sum of `count` packed rows."""
    offset = count * OFFSET
    return [(((total >> shift) & FIELD_MASK) - offset) / QSCALE for shift in SHIFTS]


def unpack(packed: int) -> list[float]:
    """The class weights of one packed row."""
    return unpack_sum(packed, 1)


@dataclass(frozen=True)
class LinearModel:
    """Packed bucket rows plus a class bias; features are binary, scaled by 1/sqrt(count)."""

    rows: Mapping[int, int]
    bias: tuple[float, ...]

    _table: BucketRows = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows = BucketRows.of(self.rows)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "_table", rows)

    @classmethod
    def from_floats(cls, rows: Mapping[int, Sequence[float]], bias: Sequence[float]) -> LinearModel:
        packed = {bucket: pack(row) for bucket, row in rows.items() if any(row)}
        rounded = tuple(round(value * QSCALE) / QSCALE for value in bias)
        return cls(rows=packed, bias=rounded)

    def float_rows(self, buckets: Iterable[int]) -> dict[int, list[float]]:
        """Dequantised rows for `buckets` (zeros for buckets the model has never seen)."""
        rows = self.rows
        return {
            bucket: unpack(rows[bucket]) if bucket in rows else [0.0] * N_CLASSES
            for bucket in buckets
        }

    def logits(self, ids: Collection[int], context: Collection[int] = ()) -> list[float]:
        """Class scores for active feature ids (each worth 1/sqrt(len(ids))) plus context ids.

        Unseen buckets fetch ZERO_ROW, which adds exactly OFFSET to every field, so counting
        every id in the offset gives the same integers as summing the known rows only, without
        a filtering pass.
        """
        active = len(ids)
        if not active:
            return list(self.bias)
        rows = self._table
        fields, offset = fields_of(rows.total(ids), active), active * OFFSET
        scale = 1.0 / (math.sqrt(active) * QSCALE)
        scores = [
            bias + scale * (field - offset) for bias, field in zip(self.bias, fields, strict=True)
        ]
        if context:
            count = len(context)
            fields, offset = fields_of(rows.total(context), count), count * OFFSET
            ctx_scale = CONTEXT_WEIGHT * scale
            scores = [
                score + ctx_scale * (field - offset)
                for score, field in zip(scores, fields, strict=True)
            ]
        return scores


def probabilities(
    model: LinearModel, ids: Collection[int], context: Collection[int]
) -> list[float]:
    """softmax(model.logits(ids, context))."""
    return softmax(model.logits(ids, context))


def softmax(logits: Sequence[float]) -> list[float]:
    """Probabilities from scores (shifted by the maximum so exp never overflows)."""
    top = max(logits)
    # Comprehensions: fewer instructions than map(exp, map(sub, ...)) over eleven scores.
    exp = math.exp
    exps = [exp(logit - top) for logit in logits]
    inverse = 1.0 / sum(exps)
    # A comprehension multiplies floats faster than map(operator.mul, ...).
    return [exp * inverse for exp in exps]
