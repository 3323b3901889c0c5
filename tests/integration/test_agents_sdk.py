"""The OpenAI Agents SDK's default `Agent` (it speaks the Responses API) with a function tool,
run by the SDK's own `Runner` against the real app on a real server, in front of the fake
upstream: the model calls the tool, the SDK runs it and sends the result back, and the model
answers. Nothing of ours is patched; the SDK is the client a user would run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ToolCallItem, ToolCallOutputItem
from openai import AsyncOpenAI

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

CITIES: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Current weather of a city.

    Args:
        city: the city's name.
    """
    CITIES.append(city)
    return f"21 C and sunny in {city}"


@pytest.fixture(autouse=True)
def _no_trace_export() -> Iterator[None]:
    set_tracing_disabled(True)  # the SDK would otherwise send traces to api.openai.com
    CITIES.clear()
    yield


@pytest.fixture
def gateway(fake: FakeUpstreamThread, tmp_path: Path) -> Iterator[str]:
    base = fake.url + "/v1"
    config = config_from(
        {
            "model_list": [deployment("local", "hosted_vllm/tiny", base)],
            "router_settings": {"num_retries": 0, "timeout": 5},
            "triage": {"ledger": {"path": str(tmp_path / "ledger.db")}},
            "responses": {"path": str(tmp_path / "responses.db")},
        }
    )
    with serve(create_app(config)) as url:
        yield url


@pytest.fixture
async def openai_client(gateway: str) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    yield client
    await client.close()


def _agent(client: AsyncOpenAI, **settings: Any) -> Agent[Any]:
    return Agent(
        name="Weather agent",
        instructions="Answer weather questions with the get_weather tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model="local", openai_client=client),
        model_settings=ModelSettings(**settings),
    )


def _tool_steps(result: Any) -> tuple[list[Any], list[Any]]:
    calls = [i for i in result.new_items if isinstance(i, ToolCallItem)]
    outputs = [i for i in result.new_items if isinstance(i, ToolCallOutputItem)]
    return calls, outputs


async def test_default_agent_runs_a_function_tool_through_triage(
    openai_client: AsyncOpenAI, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    result = await Runner.run(_agent(openai_client), "What is the weather in Paris?")
    assert CITIES == ["Paris"]  # the tool ran, with the arguments the model chose
    calls, outputs = _tool_steps(result)
    assert len(calls) == 1 and len(outputs) == 1
    assert outputs[0].output == "21 C and sunny in Paris"
    assert isinstance(result.final_output, str)
    assert result.final_output.startswith("fake reply from tiny")
    # The second turn carried the call and its output back to the backend as chat messages.
    chats = [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]
    assert len(chats) == 2
    second = chats[1]["messages"]
    assert second[0]["role"] == "system"
    call_id = second[-2]["tool_calls"][0]["id"]
    assert json.loads(second[-2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": call_id,
        "content": "21 C and sunny in Paris",
    }
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.rows()
    assert [(r.route, r.status) for r in rows] == [("local", 200), ("local", 200)]


async def test_streamed_agent_runs_the_tool_and_streams_the_answer(
    openai_client: AsyncOpenAI, tmp_path: Path
) -> None:
    run = Runner.run_streamed(_agent(openai_client), "Weather in Oslo, please?")
    deltas: list[str] = []
    async for event in run.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            deltas.append(event.data.delta)
    assert CITIES == ["Oslo"]
    assert isinstance(run.final_output, str) and run.final_output.startswith("fake reply")
    assert "".join(deltas) == run.final_output
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.rows()
    assert [(r.route, r.status, r.stream) for r in rows] == [("local", 200, 1), ("local", 200, 1)]


async def test_agent_with_stored_conversation_uses_previous_response_id(
    openai_client: AsyncOpenAI, fake: FakeUpstreamThread
) -> None:
    """The SDK's server-managed conversation mode: each turn sends only its new items and the
    previous response's id; Triage rebuilds the conversation from the stored turns."""
    agent = _agent(openai_client, store=True)
    first = await Runner.run(agent, "What is the weather in Rome?")
    assert CITIES == ["Rome"]
    follow = await Runner.run(
        agent, "Thanks, and tomorrow?", previous_response_id=first.last_response_id
    )
    assert isinstance(follow.final_output, str) and follow.final_output
    messages = [r.json for r in fake.requests() if r.path.endswith("/chat/completions")][-1][
        "messages"
    ]
    contents = [m.get("content") for m in messages]
    assert "What is the weather in Rome?" in contents
    assert "21 C and sunny in Rome" in contents
    assert contents[-1] == "Thanks, and tomorrow?"
    # The SDK sent only the new message; the rest came from the stored turns.
    assert follow.last_response_id is not None
    sent = await openai_client.responses.input_items.list(follow.last_response_id)
    assert [i.type for i in sent.data] == ["message"]
