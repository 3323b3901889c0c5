"""Hypothesis on the request models themselves: any JSON value either validates or raises
pydantic's ValidationError, and what validates can be forwarded and measured without error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.fuzz.strategies import MODELS, PATHS, json_values, wrong_types
from triage.protocol import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    EMBEDDING_FIELDS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    chat_text,
    forwarded,
)

MODEL_SETTINGS = settings(
    max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _validate_and_use(model: type[BaseModel], data: Any) -> None:
    try:
        request = model.model_validate(data)
    except ValidationError:
        return
    if isinstance(request, ChatCompletionRequest):
        forwarded(request, CHAT_FIELDS)
        chat_text(request)
    elif isinstance(request, CompletionRequest):
        forwarded(request, COMPLETION_FIELDS)
    else:
        forwarded(request, EMBEDDING_FIELDS)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", PATHS[:3])
@MODEL_SETTINGS
@given(data=st.data())
def test_a_request_model_validates_or_raises_validation_error_for_any_body(
    path: str, data: st.DataObject
) -> None:
    _validate_and_use(MODELS[path], data.draw(wrong_types(path)))


@pytest.mark.parametrize("path", PATHS[:3])
@MODEL_SETTINGS
@given(value=json_values)
def test_a_request_model_validates_or_raises_validation_error_for_any_json(
    path: str, value: Any
) -> None:
    _validate_and_use(MODELS[path], value)


def test_absurd_embedding_dimensions_are_refused() -> None:
    with pytest.raises(ValidationError):
        EmbeddingRequest.model_validate({"model": "emb", "input": "hi", "dimensions": 10**12})
