"""The fake upstream's OpenAI surface, driven over loopback HTTP by the official openai SDK."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import openai
import pytest

from triage.fakeupstream import DEFAULT_MODELS, FakeUpstreamThread

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_chat_reply_is_deterministic_with_word_token_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "be brief"}, *user("Tell me about rivers")]
    first = client.chat.completions.create(model="fake-model", messages=messages)
    second = client.chat.completions.create(model="fake-model", messages=messages)

    content = first.choices[0].message.content
    assert content == "fake reply from fake-model: Tell me about rivers Tell me about rivers"
    assert second.choices[0].message.content == content
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (6, 12)
    assert first.usage.total_tokens == 18


def test_max_tokens_caps_the_reply_and_reports_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="fake-model", messages=user("hello"), max_completion_tokens=5
    )
    assert reply.choices[0].message.content == "fake reply from fake-model: hello"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_stop_sequence_cuts_the_reply_before_it(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=user("hi"), stop=["from"])
    assert reply.choices[0].message.content == "fake reply "
    assert reply.choices[0].finish_reason == "stop"


def test_n_returns_distinct_choices_and_sums_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=user("one two three"), n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) == 3
    assert reply.usage is not None and reply.usage.completion_tokens == 36


def test_seed_makes_text_reproducible_and_seed_dependent(client: openai.OpenAI) -> None:
    def text(seed: int) -> str | None:
        reply = client.chat.completions.create(
            model="m", messages=user("alpha beta gamma"), seed=seed
        )
        return reply.choices[0].message.content

    assert text(1) == text(1)
    assert text(1) != text(2)


def test_stream_matches_plain_reply_and_ends_cleanly(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="m", messages=user("stream me"))
    stream = client.chat.completions.create(model="m", messages=user("stream me"), stream=True)
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_include_usage_adds_a_final_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=user("count me"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 12
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_count_usage_in_stream_off_ignores_include_usage(
    fake: FakeUpstreamThread, client: openai.OpenAI
) -> None:
    fake.configure(count_usage_in_stream=False)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=user("x"), stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_weather_question_with_tools_returns_a_tool_call(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=user("What is the weather in Paris?"), tools=[WEATHER_TOOL]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "location": "Paris",
        "unit": "celsius",
        "days": 1,
    }


def test_tool_choice_forces_the_named_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m",
        messages=user("no trigger word here"),
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = reply.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_time"
    assert json.loads(calls[0].function.arguments) == {}


def test_tools_without_trigger_or_after_tool_result_get_text(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="m", messages=user("hi"), tools=[WEATHER_TOOL])
    assert plain.choices[0].message.tool_calls is None
    followup = client.chat.completions.create(
        model="m",
        tools=[WEATHER_TOOL],
        messages=[
            *user("What is the weather in Paris?"),
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )
    assert followup.choices[0].finish_reason == "stop"
    assert followup.choices[0].message.content


def test_streamed_tool_call_reassembles_from_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m", messages=user("weather in Oslo?"), tools=[WEATHER_TOOL], stream=True
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            name += (call.function and call.function.name) or ""
            arguments += (call.function and call.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments)["location"] == "Oslo"
    assert finish == "tool_calls"


def test_json_object_format_returns_a_json_object(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=user("give json"), response_format={"type": "json_object"}
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert data["reply"].startswith("fake reply from m:")


def test_json_schema_format_fills_the_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    }
    reply = client.chat.completions.create(
        model="m",
        messages=user("Largest city in Japan is Tokyo"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema},
        },
    )
    assert json.loads(reply.choices[0].message.content or "") == {
        "city": "Tokyo",
        "population": 1,
    }


def test_logprobs_cover_every_token(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=user("hi"), logprobs=True, top_logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert "".join(e.token for e in logprobs.content) == reply.choices[0].message.content
    assert all(e.logprob < 0 and len(e.top_logprobs) == 2 for e in logprobs.content)

    streamed = client.chat.completions.create(
        model="m", messages=user("hi"), logprobs=True, stream=True
    )
    entries = [
        e
        for c in streamed
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content or []
    ]
    assert [e.logprob for e in entries] == [e.logprob for e in logprobs.content]


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; float must give the same vectors.
    first = client.embeddings.create(model="fake-embedding", input=["apple", "pear"])
    again = client.embeddings.create(model="fake-embedding", input="apple", encoding_format="float")
    wide = client.embeddings.create(model="fake-embedding", input="apple", dimensions=32)

    vectors = [d.embedding for d in first.data]
    assert [len(v) for v in vectors] == [8, 8]
    assert vectors[0] != vectors[1]
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-4)
    assert again.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    assert len(wide.data[0].embedding) == 32
    assert first.usage.prompt_tokens == 2


def test_models_list_and_health(fake: FakeUpstreamThread, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == list(DEFAULT_MODELS)
    assert httpx.get(fake.url + "/health").json() == {"status": "ok"}


def test_text_completions_plain_and_streamed(client: openai.OpenAI) -> None:
    plain = client.completions.create(model="m", prompt="once upon a time")
    assert plain.choices[0].text.startswith("fake reply from m: once upon")
    assert plain.usage is not None and plain.usage.prompt_tokens == 4

    chunks = list(
        client.completions.create(
            model="m",
            prompt="once upon a time",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_missing_messages_is_an_openai_shaped_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[])
    assert "messages" in caught.value.message
