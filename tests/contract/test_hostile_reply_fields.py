"""A backend's answer is rebuilt field by field (normalize.py), and each field a backend gets
wrong in its own way is still read once and fixed the same way: a `created` that is no number,
`tool_calls` that are no list (or hold things that are no calls), a `refusal` or token counts of
the wrong type."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.contract.openapi_spec import validate
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    config = config_from(
        {
            "model_list": [deployment("local", "hosted_vllm/tiny", fake.url + "/v1")],
            "router_settings": {"num_retries": 0},
        }
    )
    with serve(create_app(config)) as url:
        yield url


def _answer(message: dict[str, Any], **top: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
    answer = {"id": "chatcmpl-h", "object": "chat.completion", "model": "tiny", "choices": [choice]}
    return answer | top


def _chat(url: str, fake: FakeUpstreamThread, answer: dict[str, Any]) -> dict[str, Any]:
    fake.add_fault(kind="status", status=200, body=answer)
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    validate(reply, "CreateChatCompletionResponse")
    return reply


@pytest.mark.parametrize("tool_calls", ["oops", {"id": "x"}, [], None, [1, "two", None]])
def test_tool_calls_that_are_no_calls_leave_none_behind(
    gateway: str, fake: FakeUpstreamThread, tool_calls: Any
) -> None:
    reply = _chat(gateway, fake, _answer({"content": "hi", "tool_calls": tool_calls}))
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "hi", "refusal": None}


def test_a_tool_call_among_junk_is_completed_and_its_arguments_made_a_string(
    gateway: str, fake: FakeUpstreamThread
) -> None:
    calls = [7, {"function": {"name": "f", "arguments": {"a": 1}}}]
    message = _chat(gateway, fake, _answer({"content": None, "tool_calls": calls}))
    message = message["choices"][0]["message"]
    [call] = message["tool_calls"]
    assert call["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert message["content"] is None and message["refusal"] is None


@pytest.mark.parametrize(("refusal", "kept"), [(5, None), ({"a": 1}, None), ("no", "no")])
def test_only_a_string_refusal_is_kept(
    gateway: str, fake: FakeUpstreamThread, refusal: Any, kept: str | None
) -> None:
    reply = _chat(gateway, fake, _answer({"content": "x", "refusal": refusal}))
    assert reply["choices"][0]["message"]["refusal"] == kept


@pytest.mark.parametrize("created", ["1700000000", None, [1], 1.7e9])
def test_created_is_the_backends_number_or_now(
    gateway: str, fake: FakeUpstreamThread, created: Any
) -> None:
    before = int(time.time())
    reply = _chat(gateway, fake, _answer({"content": "x"}, created=created))
    if isinstance(created, float):
        assert reply["created"] == int(created)
    else:
        assert before <= reply["created"] <= time.time() + 1


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": "3", "completion_tokens": 1}, None),
        ({"completion_tokens": 1}, None),
        ([3, 1], None),
        (
            {"prompt_tokens": 3, "completion_tokens": "1", "total_tokens": 99},
            {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
        ),
        (
            {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 99},
            {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        ),
    ],
)
def test_usage_is_kept_only_with_a_whole_prompt_count_and_its_total_recomputed(
    gateway: str, fake: FakeUpstreamThread, usage: Any, expected: dict[str, int] | None
) -> None:
    reply = _chat(gateway, fake, _answer({"content": "x"}, usage=usage))
    assert reply.get("usage") == expected
