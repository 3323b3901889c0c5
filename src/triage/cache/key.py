"""The cache key of a request: who asked, where it was routed, and everything that changes the
answer.

The body hashed is the one that goes upstream (allow-listed fields, no `model`), minus the
fields that cannot change the output; the route's model groups stand in for the model. Two
requests share an entry only when all of that is equal, byte for byte after canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Fields that change who is billed or how the answer is framed, never its content. Whether
# the answer is streamed is part of the key; a stream's usage chunk is rebuilt on replay.
IGNORED = frozenset({"user", "stream", "stream_options", "metadata", "store", "service_tier"})
PREFIX = "triage:cache:"
SHARED = "*"


def cache_key(
    scope: str, kind: str, groups: tuple[str, ...], body: dict[str, Any], stream: bool
) -> str:
    material = {
        "scope": scope,
        "kind": kind,
        "groups": list(groups),
        "stream": stream,
        "body": {k: v for k, v in body.items() if k not in IGNORED},
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return PREFIX + hashlib.sha256(encoded.encode()).hexdigest()
