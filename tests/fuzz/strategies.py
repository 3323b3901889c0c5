"""Hypothesis strategies for hostile request bodies: JSON of the wrong types, raw garbage, invalid
UTF-8, truncated or mangled JSON text, non-JSON literals, duplicate keys and deep nesting."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from triage.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, Message

MESSAGES = [{"role": "user", "content": "hello there"}]
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "local", "messages": MESSAGES},
    "/v1/completions": {"model": "local", "prompt": "hello there"},
    "/v1/embeddings": {"model": "emb", "input": "hello there"},
    "/v1/triage/explain": {"model": "auto", "messages": MESSAGES},
}
PATHS = tuple(VALID)
MODELS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
    "/v1/triage/explain": ChatCompletionRequest,
}
# Fields Triage must accept and ignore (or never forward), and names of model attributes.
EXTRA_FIELDS = ("api_base", "api_key", "mock_response", "metadata", "x", "wants_usage", "copy")
# Every endpoint's fields: one endpoint's field is an unknown extra on another.
ALL_FIELDS = tuple(sorted({name for model in MODELS.values() for name in model.model_fields}))
MESSAGE_FIELDS = (*Message.model_fields, "refusal", "x")

# Fragments that are not JSON, or not UTF-8, or JSON whose value breaks something downstream.
LITERALS = (
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"-1e999",
    b"1e-999",
    b"9" * 4000,
    b"9" * 5000,
    b"-0",
    b"0.1e1",
    b'"\\ud800"',
    b'"\\udfff\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"\\u0000"',
    b'"a\x01b"',
    b'"\x7f\t"',
    b'"\xff"',
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\xf4\x90\x80\x80"',
    b"\xef\xbb\xbf{}",
    b"true",
    b"null",
    b"[]",
    b"{}",
    b'""',
)
FRAGMENTS = (*LITERALS, b"\xff", b"\x00", b"\x1f", b",", b"}", b"]", b'"', b"\\", b":", b"{{")

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def wrong_types(draw: st.DrawFn, path: str) -> dict[str, Any]:
    """A valid body with one to three fields (its own, another endpoint's or unknown ones) set to
    any JSON value, and sometimes a message field too."""
    body = copy.deepcopy(VALID[path])
    names = (*ALL_FIELDS, *EXTRA_FIELDS)
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        body[name] = draw(json_values)
    if "messages" in VALID[path] and draw(st.booleans()):
        field = draw(st.sampled_from(MESSAGE_FIELDS))
        body["messages"] = [{**MESSAGES[0], field: draw(json_values)}]
    return body


@st.composite
def with_literal(draw: st.DrawFn, path: str) -> bytes:
    """A body whose field (maybe inside a message) holds a literal straight from `LITERALS`."""
    body = draw(wrong_types(path))
    body[draw(st.sampled_from([*MODELS[path].model_fields, "x"]))] = "@LITERAL@"
    raw = json.dumps(body).encode()
    return raw.replace(b'"@LITERAL@"', draw(st.sampled_from(LITERALS)), 1)


@st.composite
def mangled(draw: st.DrawFn, path: str) -> bytes:
    """Valid JSON text cut short, or with a fragment spliced in anywhere."""
    raw = json.dumps(draw(wrong_types(path))).encode()
    at = draw(st.integers(0, len(raw)))
    if draw(st.booleans()):
        return raw[:at]
    return raw[:at] + draw(st.sampled_from(FRAGMENTS)) + raw[at:]


@st.composite
def duplicate_keys(draw: st.DrawFn, path: str) -> bytes:
    """A body that repeats a key, the repeat first or last (JSON parsers keep the last)."""
    raw = json.dumps(VALID[path]).encode()
    name = draw(st.sampled_from([*MODELS[path].model_fields, "x"]))
    repeat = json.dumps({name: draw(json_values)}).encode()[1:-1]
    if draw(st.booleans()):
        return b"{" + repeat + b"," + raw[1:]
    return raw[:-1] + b"," + repeat + b"}"


@st.composite
def nested(draw: st.DrawFn, path: str, max_depth: int) -> tuple[bytes, int]:
    """A valid body with a value nested `depth` lists or objects deep in some field; returns
    the text and the depth of its deepest container, counting the body itself."""
    depth = draw(st.integers(1, max_depth))
    open_, close = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    body = copy.deepcopy(VALID[path])
    in_message = "messages" in body and draw(st.booleans())
    field = draw(st.sampled_from(MESSAGE_FIELDS if in_message else [*EXTRA_FIELDS, "tools"]))
    (body["messages"][0] if in_message else body)[field] = "@NEST@"
    raw = json.dumps(body).encode().replace(b'"@NEST@"', open_ * depth + b"1" + close * depth)
    return raw, depth + (3 if in_message else 1)


def raw_json(body: bytes) -> Any:
    """The body as the gateway's JSON parser would read it, or None when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None
