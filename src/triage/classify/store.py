"""Reading and writing weight files.

Owns the on-disk format: one gzip'd JSON document holding the task order, the feature version,
the class bias, the heavy-head threshold, a free-form provenance record (which data and which
command built the file) and, base64-encoded, the bucket ids (uint32 little-endian) and their
packed rows (ROW_BYTES little-endian bytes each). Binary blobs inside JSON keep loading to a few
milliseconds: no per-number JSON parsing, just one int.from_bytes per bucket.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
from array import array
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from triage.classify.features import BUCKETS, FEATURE_VERSION
from triage.classify.linear import FIELD_BITS, OFFSET, QSCALE, ROW_BYTES, LinearModel
from triage.classify.taxonomy import TASKS

FORMAT = "triage.classify/2"
WEIGHTS_FILE = "classifier.json.gz"


class Weights(NamedTuple):
    """A model and the decision settings stored with it."""

    model: LinearModel
    heavy_threshold: float = 1.0
    provenance: dict[str, Any] | None = None


def _encode_ids(ids: list[int]) -> str:
    packed = array("I", ids)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _decode_ids(text: str) -> array[int]:
    packed = array("I")
    packed.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed


def encode(weights: Weights) -> bytes:
    model = weights.model
    ids = sorted(model.rows)
    rows = b"".join(model.rows[bucket].to_bytes(ROW_BYTES, "little") for bucket in ids)
    document = {
        "format": FORMAT,
        "features": FEATURE_VERSION,
        "buckets": BUCKETS,
        "tasks": list(TASKS),
        "quantisation": {"field_bits": FIELD_BITS, "scale": QSCALE, "offset": OFFSET},
        "bias": list(model.bias),
        "heavy_threshold": weights.heavy_threshold,
        "provenance": weights.provenance or {},
        "ids": _encode_ids(ids),
        "rows": base64.b64encode(rows).decode("ascii"),
    }
    # mtime=0 keeps the file byte-identical across rebuilds from the same examples.
    return gzip.compress(json.dumps(document, sort_keys=True).encode(), mtime=0)


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
    document = json.loads(gzip.decompress(data))
    _check(document, where)
    ids = _decode_ids(document["ids"])
    rows = memoryview(base64.b64decode(document["rows"]))
    if len(rows) != len(ids) * ROW_BYTES:
        raise ValueError(f"{where}: row data does not match the bucket ids")
    from_bytes = int.from_bytes
    packed = [
        from_bytes(rows[start : start + ROW_BYTES], "little")
        for start in range(0, len(rows), ROW_BYTES)
    ]
    model = LinearModel(rows=dict(zip(ids, packed, strict=True)), bias=tuple(document["bias"]))
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
