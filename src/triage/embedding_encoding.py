"""Embeddings in the encoding the client asked for, whatever the backend answered.

The openai SDK asks for `encoding_format: "base64"` unless told otherwise (and decodes it);
backends that ignore the field (Ollama, litellm's translations) answer floats, and an
OpenAI-protocol one may answer base64 to a client that asked for floats.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from triage.errors import UpstreamError


def with_encoding(body: dict[str, Any], encoding: str | None) -> dict[str, Any]:
    """`data[].embedding` as the client asked: base64 of little-endian float32 for "base64",
    floats otherwise (the spec's default). Backends that ignore `encoding_format` (Ollama, and
    litellm's translation of it) answer floats; an OpenAI-protocol one may answer base64."""
    for item in body["data"]:
        value = item["embedding"]
        if encoding == "base64" and isinstance(value, list):
            item["embedding"] = _to_base64(value)
        elif encoding != "base64" and isinstance(value, str):
            item["embedding"] = _from_base64(value)
    return body


def _to_base64(values: list[Any]) -> str:
    try:
        if not all(type(v) in (float, int) for v in values):
            raise ValueError
        packed = struct.pack(f"<{len(values)}f", *values)
    except (ValueError, OverflowError, struct.error):
        raise UpstreamError(
            "an upstream answered an embedding that is not float32 numbers"
        ) from None
    return base64.b64encode(packed).decode("ascii")


def _from_base64(text: str) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b"?"  # not base64 at all: refused below like a cut-off one
    if len(raw) % 4:
        raise UpstreamError("an upstream answered an embedding that is not base64 float32")
    return [float(v) for v in struct.unpack(f"<{len(raw) // 4}f", raw)]
