"""`forwarded` finds a request's only forwardable set field by name, and walks the declared
fields only when two or more may go: both ways must give the serializer's body byte for byte,
with extras set beside the one field, nulls, copies with an updated model and models built in
code."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz.test_forwarded_equivalence import reference
from triage.protocol import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    EMBEDDING_FIELDS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    Message,
    forwarded,
)
from triage.wire import dumps

MESSAGES = [{"role": "user", "content": "hi", "name": None, "extra": 1}]
CHAT: list[dict[str, Any]] = [
    {"model": "m", "messages": MESSAGES},
    {"model": "m", "messages": MESSAGES, "stream": True},  # stream never goes
    {"model": "m", "messages": MESSAGES, "temperature": None},  # a set null
    {"model": "m", "messages": MESSAGES, "functions": [{"name": "f"}]},  # an allowed extra
    {"model": "m", "messages": MESSAGES, "functions": None, "api_base": "x"},
    {"model": "m", "messages": MESSAGES, "api_key": "k", "mock_response": "r"},
    {"model": "m", "messages": MESSAGES, "user": "u", "temperature": 0.5, "seed": 3},
    {"user": "u", "messages": MESSAGES, "model": "m", "max_tokens": 9},  # set out of order
    {"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": True, "x": 1}},
    {"model": "m", "messages": MESSAGES, "stream_options": {}},
]


@pytest.mark.parametrize("data", CHAT)
def test_chat_bodies_match_the_serializer(data: dict[str, Any]) -> None:
    request = ChatCompletionRequest.model_validate(data)
    assert dumps(forwarded(request, CHAT_FIELDS)) == dumps(reference(request, CHAT_FIELDS))
    copied = request.model_copy(update={"model": "other"})
    assert dumps(forwarded(copied, CHAT_FIELDS)) == dumps(reference(copied, CHAT_FIELDS))


@pytest.mark.parametrize(
    ("model", "fields", "data"),
    [
        (CompletionRequest, COMPLETION_FIELDS, {"model": "m", "prompt": "p"}),
        (CompletionRequest, COMPLETION_FIELDS, {"model": "m", "prompt": [1, 2], "echo": True}),
        (EmbeddingRequest, EMBEDDING_FIELDS, {"model": "m", "input": "x"}),
        (EmbeddingRequest, EMBEDDING_FIELDS, {"model": "m", "input": "x", "user": None}),
        (EmbeddingRequest, EMBEDDING_FIELDS, {"model": "m", "input": ["a"], "dimensions": 8}),
    ],
)
def test_other_bodies_match_the_serializer(
    model: type[CompletionRequest | EmbeddingRequest], fields: frozenset[str], data: Any
) -> None:
    request = model.model_validate(data)
    assert dumps(forwarded(request, fields)) == dumps(reference(request, fields))


def test_models_built_in_code() -> None:
    message = Message(role="user", content="hi")
    built = ChatCompletionRequest.model_construct(
        _fields_set={"model", "messages", "temperature"},
        model="m",
        messages=[message],
        temperature=0.3,
    )
    assert forwarded(built, CHAT_FIELDS) == reference(built, CHAT_FIELDS)
    alone = ChatCompletionRequest.model_construct(
        _fields_set={"messages"}, model="m", messages=[message], temperature=0.3
    )
    assert forwarded(alone, CHAT_FIELDS) == reference(alone, CHAT_FIELDS)
    assert "temperature" not in forwarded(alone, CHAT_FIELDS)
