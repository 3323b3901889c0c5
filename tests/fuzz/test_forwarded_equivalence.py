"""`protocol.forwarded` builds the upstream body from the validated values, without pydantic's
serializer: for any body a client can send, the bytes that go upstream must be exactly those of
the serializer's rendering (the reference below is the implementation it replaced), and the body
must be a copy that the lanes may change without touching the request."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.fuzz.strategies import MODELS, PATHS, json_values, wrong_types
from triage.protocol import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    CONTENT_PART_FIELDS,
    EMBEDDING_FIELDS,
    MESSAGE_FIELDS,
    STREAM_OPTIONS_FIELDS,
    TOOL_CALL_FIELDS,
    ChatCompletionRequest,
    CompletionRequest,
    Message,
    forwarded,
)
from triage.protocol import Request as Body
from triage.wire import dumps

SETTINGS = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FIELDS = {
    ChatCompletionRequest: CHAT_FIELDS,
    CompletionRequest: COMPLETION_FIELDS,
}


def _only(value: Any, keys: frozenset[str]) -> Any:
    return {k: v for k, v in value.items() if k in keys} if isinstance(value, dict) else value


def _reference_message(message: Message) -> dict[str, Any]:
    out = message.model_dump(include=set(MESSAGE_FIELDS), exclude_none=True)
    if isinstance(out.get("content"), list):
        out["content"] = [_only(part, CONTENT_PART_FIELDS) for part in out["content"]]
    if out.get("tool_calls") is not None:
        out["tool_calls"] = [_only(call, TOOL_CALL_FIELDS) for call in out["tool_calls"]]
    return out


def reference(request: Body, fields: frozenset[str]) -> dict[str, Any]:
    """The forwarded body as pydantic's serializer renders it (the implementation replaced)."""
    body = request.model_dump(include=set(fields), exclude_unset=True, exclude_none=True)
    if isinstance(request, ChatCompletionRequest):
        body["messages"] = [_reference_message(m) for m in request.messages]
    if body.get("stream_options") is not None:
        body["stream_options"] = _only(body["stream_options"], STREAM_OPTIONS_FIELDS)
    return body


def _fields_of(request: BaseModel) -> frozenset[str]:
    return FIELDS.get(type(request), EMBEDDING_FIELDS)


def _check(model: type[BaseModel], data: Any) -> None:
    try:
        request: Any = model.model_validate(data)
    except ValidationError:
        return
    fields = _fields_of(request)
    expected = dumps(reference(request, fields))
    body = forwarded(request, fields)
    assert dumps(body) == expected
    _scribble(body)  # what a lane might do to the body it was handed
    assert dumps(reference(request, fields)) == expected, "the body shares state with the request"


def _scribble(value: Any) -> None:
    if isinstance(value, dict):
        for item in list(value.values()):
            _scribble(item)
        value["scribbled"] = None
    elif isinstance(value, list):
        for item in list(value):
            _scribble(item)
        value.append("scribbled")


# Values of the right type for every field, so most bodies validate and many fields are set at
# once; extras (smuggled keys, unknown OpenAI fields) at every level, nulls wherever they parse.
small = st.integers(min_value=0, max_value=2) | st.floats(min_value=0, max_value=2)
parts = st.lists(
    st.dictionaries(
        st.sampled_from([*CONTENT_PART_FIELDS, "api_base", "x", "cache_control"]), json_values
    ),
    max_size=3,
)
calls = st.lists(
    st.dictionaries(st.sampled_from([*TOOL_CALL_FIELDS, "api_key", "x"]), json_values), max_size=3
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer"])},
    optional={
        "content": st.none() | st.text(max_size=20) | parts,
        "name": st.none() | st.text(max_size=8),
        "tool_calls": st.none() | calls,
        "tool_call_id": st.none() | st.text(max_size=8),
        "refusal": json_values,
        "audio": json_values,
        "function_call": json_values,
        "api_base": json_values,
        "x": json_values,
    },
)
sampling = {
    "temperature": st.none() | small,
    "top_p": st.none() | st.floats(min_value=0, max_value=1) | st.just(1),
    "n": st.none() | st.integers(min_value=1, max_value=128),
    "stop": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=4),
    "max_tokens": st.none() | st.integers(min_value=1, max_value=10**6) | st.just(5.0),
    "presence_penalty": st.none() | small,
    "frequency_penalty": st.none() | small,
    "logit_bias": st.none() | st.dictionaries(st.text(max_size=5), small, max_size=3),
    "user": st.none() | st.text(max_size=8),
    "seed": st.none() | st.integers(),
    "stream": st.booleans(),
    "stream_options": st.none()
    | st.fixed_dictionaries(
        {},
        optional={
            "include_usage": st.none() | st.booleans(),
            "include_obfuscation": st.none() | st.booleans(),
            "x": json_values,
        },
    ),
    "api_base": json_values,
    "mock_response": json_values,
    "metadata": json_values,
}
chat = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.lists(message, min_size=1, max_size=3)},
    optional={
        **sampling,
        "max_completion_tokens": st.none() | st.integers(min_value=1, max_value=99),
        "logprobs": st.none() | st.booleans(),
        "top_logprobs": st.none() | st.integers(min_value=0, max_value=20),
        "tools": st.none() | st.lists(st.dictionaries(st.text(max_size=5), json_values)),
        "tool_choice": st.none() | st.text(max_size=5) | st.dictionaries(st.text(), json_values),
        "parallel_tool_calls": st.none() | st.booleans(),
        "response_format": st.none() | st.dictionaries(st.text(max_size=5), json_values),
        "reasoning_effort": st.none() | st.text(max_size=5),
        "functions": json_values,
        "function_call": json_values,
    },
)
prompts = (
    st.text(max_size=10)
    | st.lists(st.text(max_size=5), min_size=1)
    | st.lists(st.integers(), min_size=1)
    | st.lists(st.lists(st.integers()), min_size=1)
)
completion = st.fixed_dictionaries(
    {"model": st.just("m"), "prompt": prompts},
    optional={
        **sampling,
        "suffix": st.none() | st.text(max_size=5),
        "logprobs": st.none() | st.integers(min_value=0, max_value=5),
        "echo": st.none() | st.booleans(),
        "best_of": st.none() | st.integers(min_value=1, max_value=9),
    },
)
embedding = st.fixed_dictionaries(
    {"model": st.just("m"), "input": prompts},
    optional={
        "dimensions": st.none() | st.integers(min_value=1, max_value=9),
        "encoding_format": st.none() | st.sampled_from(["float", "base64"]),
        "user": st.none() | st.text(max_size=5),
        "api_key": json_values,
    },
)


@SETTINGS
@given(data=chat)
def test_a_chat_body_goes_upstream_byte_for_byte_as_the_serializer_renders_it(
    data: dict[str, Any],
) -> None:
    _check(ChatCompletionRequest, data)


@SETTINGS
@given(data=completion | embedding)
def test_completion_and_embedding_bodies_go_upstream_as_the_serializer_renders_them(
    data: dict[str, Any],
) -> None:
    _check(CompletionRequest if "prompt" in data else MODELS["/v1/embeddings"], data)


@pytest.mark.parametrize("path", PATHS[:3])
@SETTINGS
@given(data=st.data())
def test_any_mistyped_body_that_validates_is_forwarded_as_the_serializer_renders_it(
    path: str, data: st.DataObject
) -> None:
    _check(MODELS[path], data.draw(wrong_types(path)))


def test_a_value_json_cannot_hold_takes_the_serializers_path() -> None:
    """Code (a translator) may put any object under an `Any`: rendered as pydantic would."""

    class Part(BaseModel):
        type: str = "text"
        text: str = "hi"

    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": ("a", "b")}]}],
            "tools": [{"function": Part()}],
        }
    )
    assert forwarded(request, CHAT_FIELDS) == reference(request, CHAT_FIELDS)
    before = copy.deepcopy(request.model_dump())
    _scribble(forwarded(request, CHAT_FIELDS))
    assert request.model_dump() == before
