"""LiteLLM's own providers work against the fake upstream: the gateway's real client path."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from triage.fakeupstream import RunningFake, start_fake

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def litellm() -> Any:
    # Never fetch the model cost map from the network during tests.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    running = await start_fake()
    try:
        yield running
    finally:
        await running.stop()


async def test_anthropic_provider_plain_and_streamed(litellm: Any, fake: RunningFake) -> None:
    common = {"model": "anthropic/claude-fake", "api_base": fake.url, "api_key": "sk-ant"}
    reply = await litellm.acompletion(messages=[{"role": "user", "content": "hi"}], **common)
    assert reply.choices[0].message.content.startswith("fake reply from claude-fake:")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (1, 12)
    assert fake.upstream.requests[-1].headers["x-api-key"] == "sk-ant"

    stream = await litellm.acompletion(
        messages=[{"role": "user", "content": "hi"}], stream=True, **common
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == reply.choices[0].message.content

    tool_reply = await litellm.acompletion(messages=MESSAGES, tools=TOOLS, **common)
    call = tool_reply.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"location": "Paris"}')


async def test_ollama_chat_provider_streams_text_and_tool_calls(
    litellm: Any, fake: RunningFake
) -> None:
    common = {"model": "ollama_chat/llama3", "api_base": fake.url}
    stream = await litellm.acompletion(
        messages=[{"role": "user", "content": "hi"}], stream=True, **common
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text.startswith("fake reply from llama3:")

    tool_reply = await litellm.acompletion(messages=MESSAGES, tools=TOOLS, **common)
    call = tool_reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert '"Paris"' in call.function.arguments


async def test_openai_compatible_provider_sees_fault_status(
    litellm: Any, fake: RunningFake
) -> None:
    fake.upstream.add_fault(kind="context_window")
    with pytest.raises(litellm.ContextWindowExceededError):
        await litellm.acompletion(
            model="openai/fake-model",
            api_base=fake.url + "/v1",
            api_key="x",
            messages=[{"role": "user", "content": "hi"}],
            num_retries=0,
        )
