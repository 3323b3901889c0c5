"""Reading and writing weight files.

Owns the on-disk format: gzip of one line of JSON (the task order, the feature version, the class
bias, the heavy-head threshold, a free-form provenance record saying which data and which command
built the file, and the bucket count), then the raw bucket ids (uint32 little-endian) and their
rows. Format 4 stores each class field in FILE_FIELD_BYTES little-endian bytes (a quantised
weight never needs more: see linear.pack) and is gzipped without compression: start-up then
neither inflates ~5 MB nor builds rows in a Python loop, it widens the fields to the packed
layout with one strided copy per byte and turns each row into an int in C (struct + map).
Format 3 (every field in its full FIELD_BITS) is still read.
"""

from __future__ import annotations

import gzip
import json
import sys
from array import array
from importlib import resources
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from struct import Struct
from typing import Any, Literal, NamedTuple

from triage.classify.features import BUCKETS, FEATURE_VERSION
from triage.classify.linear import (
    FIELD_BITS,
    N_CLASSES,
    OFFSET,
    QSCALE,
    ROW_BYTES,
    BucketRows,
    LinearModel,
)
from triage.classify.taxonomy import TASKS

FORMAT = "triage.classify/4"
WEIGHTS_FILE = "classifier.json.gz"
FIELD_BYTES = FIELD_BITS // 8
"""Bytes of one class field in a packed row (in memory)."""
FILE_FIELD_BYTES = 3
"""Bytes of one class field in a format-4 file: pack() keeps every field below 2 * OFFSET."""
FIELD_WIDTH = {FORMAT: FILE_FIELD_BYTES, "triage.classify/3": FIELD_BYTES}
"""Bytes per class field of each readable format."""


class Weights(NamedTuple):
    """A model and the decision settings stored with it."""

    model: LinearModel
    heavy_threshold: float = 1.0
    provenance: dict[str, Any] | None = None


def _ids_bytes(ids: list[int]) -> bytes:
    packed = array("I", ids)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _ids_of(data: bytes) -> list[int]:
    packed = array("I")
    packed.frombytes(data)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def _restride(data: bytes, count: int, source: int, target: int, start: int = 0) -> bytearray:
    """Rows of `count` fields of `source` bytes (from `data[start:]`) copied into fields of
    `target` bytes: the low min(source, target) bytes of each field, the rest zero. One strided
    copy per byte, and no copy of `data` (start-up's peak memory)."""
    out = bytearray(count * N_CLASSES * target)
    end = start + count * N_CLASSES * source
    for field in range(N_CLASSES):
        for byte in range(min(source, target)):
            out[field * target + byte :: N_CLASSES * target] = data[
                start + field * source + byte : end : N_CLASSES * source
            ]
    return out


def _narrow(rows: bytes, count: int) -> bytes:
    """Packed rows in the file's field width; refuses a row whose field would not fit."""
    stride = N_CLASSES * FIELD_BYTES
    for field in range(N_CLASSES):
        for byte in range(FILE_FIELD_BYTES, FIELD_BYTES):
            if rows[field * FIELD_BYTES + byte :: stride].count(0) != count:
                raise ValueError("a row's class weight does not fit the weights file's fields")
    return bytes(_restride(rows, count, FIELD_BYTES, FILE_FIELD_BYTES))


def _packed_rows(rows: bytearray) -> map[int]:
    """One int per ROW_BYTES little-endian bytes, made in C."""
    chunks = map(itemgetter(0), Struct(f"{ROW_BYTES}s").iter_unpack(rows))
    order: Literal["little"] = "little"
    return map(int.from_bytes, chunks, repeat(order))


def encode(weights: Weights) -> bytes:
    model = weights.model
    ids = sorted(model.rows)
    rows = b"".join(model.rows[bucket].to_bytes(ROW_BYTES, "little") for bucket in ids)
    header = {
        "format": FORMAT,
        "features": FEATURE_VERSION,
        "buckets": BUCKETS,
        "tasks": list(TASKS),
        "quantisation": {"field_bits": FIELD_BITS, "scale": QSCALE, "offset": OFFSET},
        "bias": list(model.bias),
        "heavy_threshold": weights.heavy_threshold,
        "provenance": weights.provenance or {},
        "count": len(ids),
    }
    head = json.dumps(header, sort_keys=True).encode() + b"\n"
    # Level 0 (stored): inflating cost more start-up CPU than it saved disk. mtime=0 keeps the
    # file byte-identical across rebuilds from the same data.
    body = head + _ids_bytes(ids) + _narrow(rows, len(ids))
    return gzip.compress(body, compresslevel=0, mtime=0)


def _check(document: dict[str, Any], where: str) -> int:
    """The field width of a readable document; ValueError when it was built for another model."""
    if document.get("format") not in FIELD_WIDTH:
        raise ValueError(f"{where}: weights were built for a different 'format'")
    expected = {
        "features": FEATURE_VERSION,
        "buckets": BUCKETS,
        "tasks": list(TASKS),
        "quantisation": {"field_bits": FIELD_BITS, "scale": QSCALE, "offset": OFFSET},
    }
    for key, value in expected.items():
        if document.get(key) != value:
            raise ValueError(f"{where}: weights were built for a different {key!r}")
    return FIELD_WIDTH[document["format"]]


def decode(data: bytes, where: str = "weights") -> Weights:
    raw = gzip.decompress(data)
    cut = raw.find(b"\n")
    try:
        document = json.loads(raw[:cut])
    except ValueError:
        raise ValueError(f"{where}: not a weights file of format {FORMAT}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{where}: not a weights file of format {FORMAT}")
    width = _check(document, where)
    count = document["count"]
    body = memoryview(raw)[cut + 1 :]
    if len(body) != count * (4 + N_CLASSES * width):
        raise ValueError(f"{where}: row data does not match the bucket ids")
    ids = _ids_of(bytes(body[: 4 * count]))
    body.release()
    rows = _restride(raw, count, width, FIELD_BYTES, cut + 1 + 4 * count)
    del raw  # the file's bytes go before the row ints are made
    model = LinearModel(rows=BucketRows(ids, _packed_rows(rows)), bias=tuple(document["bias"]))
    return Weights(model, float(document["heavy_threshold"]), document.get("provenance"))


def read(path: Path | None = None) -> Weights:
    """Load weights from `path` (a file or a directory holding WEIGHTS_FILE); None: shipped ones."""
    if path is None:
        shipped = resources.files("triage.classify").joinpath("weights", WEIGHTS_FILE)
        return decode(shipped.read_bytes(), "shipped weights")
    if path.is_dir():
        path = path / WEIGHTS_FILE
    return decode(path.read_bytes(), str(path))


def write(weights: Weights, directory: Path) -> Path:
    """Write WEIGHTS_FILE into `directory` (created if needed); returns the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / WEIGHTS_FILE
    target.write_bytes(encode(weights))
    return target
