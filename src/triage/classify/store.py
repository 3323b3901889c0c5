"""Reading and writing weight files.

Owns the on-disk format: gzip of one line of JSON (the task order, the feature version, the class
bias, the heavy-head threshold, a free-form provenance record saying which data and which command
built the file, and the bucket count), then the raw bucket ids (uint32 little-endian) and their
packed rows (ROW_BYTES little-endian bytes each). Raw bytes after the header keep loading cheap:
no per-number JSON parsing and no base64, just one int.from_bytes per bucket.
"""

from __future__ import annotations

import gzip
import json
import sys
from array import array
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from triage.classify.features import BUCKETS, FEATURE_VERSION
from triage.classify.linear import (
    FIELD_BITS,
    OFFSET,
    QSCALE,
    ROW_BYTES,
    BucketRows,
    LinearModel,
)
from triage.classify.taxonomy import TASKS

FORMAT = "triage.classify/3"
WEIGHTS_FILE = "classifier.json.gz"


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


def _ids_of(data: bytes) -> array[int]:
    packed = array("I")
    packed.frombytes(data)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed


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
    # mtime=0 keeps the file byte-identical across rebuilds from the same data.
    return gzip.compress(head + _ids_bytes(ids) + rows, mtime=0)


def _check(document: dict[str, Any], where: str) -> None:
    expected = {
        "format": FORMAT,
        "features": FEATURE_VERSION,
        "buckets": BUCKETS,
        "tasks": list(TASKS),
        "quantisation": {"field_bits": FIELD_BITS, "scale": QSCALE, "offset": OFFSET},
    }
    for key, value in expected.items():
        if document.get(key) != value:
            raise ValueError(f"{where}: weights were built for a different {key!r}")


def decode(data: bytes, where: str = "weights") -> Weights:
    raw = gzip.decompress(data)
    cut = raw.find(b"\n")
    try:
        document = json.loads(raw[:cut])
    except ValueError:
        raise ValueError(f"{where}: not a weights file of format {FORMAT}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{where}: not a weights file of format {FORMAT}")
    _check(document, where)
    count = document["count"]
    body = memoryview(raw)[cut + 1 :]
    if len(body) != count * (4 + ROW_BYTES):
        raise ValueError(f"{where}: row data does not match the bucket ids")
    ids = _ids_of(bytes(body[: 4 * count]))
    rows = body[4 * count :]
    from_bytes = int.from_bytes
    packed = [
        from_bytes(rows[start : start + ROW_BYTES], "little")
        for start in range(0, len(rows), ROW_BYTES)
    ]
    model = LinearModel(rows=BucketRows(ids, packed), bias=tuple(document["bias"]))
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
