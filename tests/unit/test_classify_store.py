"""The weights file: format 4 (3-byte class fields, stored gzip) holds exactly the rows the model
scores with, format 3 files (full-width fields) still load to the same model, and a row that a
3-byte field cannot hold is refused on writing rather than silently cut."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from triage.classify import Classifier, store
from triage.classify.linear import LIMIT, OFFSET, ROW_BYTES, SHIFTS, TABLE_MIN, LinearModel, pack
from triage.classify.store import Weights


def format3(weights: Weights) -> bytes:
    """The file format 3 wrote: every class field in its full FIELD_BITS, compressed."""
    rows = weights.model.rows
    ids = sorted(rows)
    head = json.loads(gzip.decompress(store.encode(weights)).split(b"\n", 1)[0])
    head["format"] = "triage.classify/3"
    body = b"".join(bucket.to_bytes(4, "little") for bucket in ids)
    body += b"".join(rows[bucket].to_bytes(ROW_BYTES, "little") for bucket in ids)
    return gzip.compress(json.dumps(head, sort_keys=True).encode() + b"\n" + body)


def hostile_model(seed: int) -> LinearModel:
    """Rows at the quantisation's limits (every field 1 or 2 * OFFSET - 1), at bucket 0, past
    the table's minimum size, and random ones; a row of zero weights."""
    rng = random.Random(seed)
    edges = [-LIMIT - 5, -LIMIT, LIMIT, LIMIT + 5, 0.0, -1e-9, 1 / 65536]
    rows = {
        rng.randrange(TABLE_MIN + 5000): pack([rng.choice(edges) for _ in SHIFTS])
        for _ in range(500)
    }
    rows.update({0: pack([LIMIT] * len(SHIFTS)), TABLE_MIN + 9000: pack([-LIMIT] * len(SHIFTS))})
    rows[7] = pack([0.0] * len(SHIFTS))
    rows.update({rng.randrange(1 << 20): pack([rng.uniform(-200, 200) for _ in SHIFTS])})
    return LinearModel(rows=rows, bias=tuple(rng.uniform(-3, 3) for _ in SHIFTS))


@pytest.mark.parametrize("seed", range(4))
def test_format_4_keeps_every_row_bit_for_bit(seed: int) -> None:
    model = hostile_model(seed)
    weights = Weights(model, 0.25, {"seed": seed})
    loaded = store.decode(store.encode(weights))
    assert dict(loaded.model.rows) == dict(model.rows)
    assert loaded.model.rows.slots == model.rows.slots  # type: ignore[attr-defined]
    assert loaded.model.bias == model.bias
    assert (loaded.heavy_threshold, loaded.provenance) == (0.25, {"seed": seed})


def test_a_format_3_file_loads_to_the_same_model(tmp_path: Path) -> None:
    shipped = store.read()
    (tmp_path / store.WEIGHTS_FILE).write_bytes(format3(shipped))
    old = store.read(tmp_path)
    assert old.model == shipped.model
    assert old.model.rows.slots == shipped.model.rows.slots  # type: ignore[attr-defined]
    assert (old.heavy_threshold, old.provenance) == (shipped.heavy_threshold, shipped.provenance)
    hostile = Weights(hostile_model(9), 0.5)
    assert store.decode(format3(hostile)).model == hostile.model
    # Saving an old file writes the current format.
    again = store.encode(old)
    assert json.loads(gzip.decompress(again).split(b"\n", 1)[0])["format"] == store.FORMAT


def test_a_row_wider_than_the_files_fields_is_refused() -> None:
    # Not a row pack() makes: one class field at 2**24 needs a fourth byte.
    too_wide = pack([0.0] * len(SHIFTS)) - OFFSET + (1 << 24)
    model = LinearModel(rows={3: pack([1.0] * len(SHIFTS)), 5: too_wide}, bias=(0.0,) * 11)
    with pytest.raises(ValueError, match="does not fit"):
        store.encode(Weights(model))


def test_a_format_4_file_with_the_wrong_row_size_is_refused() -> None:
    raw = gzip.decompress(store.encode(Weights(hostile_model(1))))
    count = json.loads(raw.split(b"\n", 1)[0])["count"]
    # Short by a byte; as long as full-width (format 3) rows would be.
    for cut in (raw[:-1], raw + b"\0" * (count * 2 * len(SHIFTS))):
        with pytest.raises(ValueError, match="row data"):
            store.decode(gzip.compress(cut))


def test_the_shipped_file_is_format_4_and_loads_the_shipped_classifier() -> None:
    data = (Path(store.__file__).parent / "weights" / store.WEIGHTS_FILE).read_bytes()
    assert json.loads(gzip.decompress(data).split(b"\n", 1)[0])["format"] == store.FORMAT
    assert store.encode(store.decode(data)) == data
    assert Classifier.load().classify_text("Write a Python function that sorts a list").task
