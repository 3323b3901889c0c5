"""Deterministic embedding vectors: unit-length floats derived from a hash of the text.

The same text always maps to the same vector, different texts almost surely to different ones,
which is all a gateway test or a semantic-cache test needs.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any


def embed(text: str, dimensions: int) -> list[float]:
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.blake2b(f"{block}:{text}".encode(), digest_size=64).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        block += 1
    vector = raw[:dimensions]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [round(x / norm, 6) for x in vector]


def to_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32s (the openai SDK's default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def inputs_of(value: Any) -> list[str]:
    """Normalise an embeddings `input`: a string, list of strings, or token id list(s)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(str(v) for v in value)]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(str(t) for t in v) for v in value]
    raise ValueError("input must be a string or a list of strings")
