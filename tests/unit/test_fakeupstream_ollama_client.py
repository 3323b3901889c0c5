"""The fake upstream driven by the official `ollama` Python client (`ollama.AsyncClient`) over
loopback HTTP: what a user's code would see from a real Ollama, streams and errors included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import ollama
import pytest

from tests.unit.test_fakeupstream_ollama import CHAT, TOOLS
from triage.fakeupstream import FakeUpstreamThread


@pytest.fixture
async def client(fake: FakeUpstreamThread) -> AsyncIterator[ollama.AsyncClient]:
    sdk = ollama.AsyncClient(host=fake.url, timeout=10)
    try:
        yield sdk
    finally:
        await sdk.close()


async def test_chat_answers_one_typed_response(client: ollama.AsyncClient) -> None:
    reply = await client.chat(model=CHAT["model"], messages=CHAT["messages"])
    assert reply.done is True and reply.done_reason == "stop"
    assert reply.message.role == "assistant"
    assert (reply.message.content or "").startswith("fake reply from llama3: Why is the sky")
    assert reply.eval_count == 12 and (reply.total_duration or 0) > 0


async def test_chat_stream_ends_with_the_stats_part(client: ollama.AsyncClient) -> None:
    stream = await client.chat(model=CHAT["model"], messages=CHAT["messages"], stream=True)
    parts = [part async for part in stream]
    *chunks, last = parts
    assert chunks and not any(part.done for part in chunks)
    assert "".join(p.message.content or "" for p in parts) == (
        "fake reply from llama3: Why is the sky blue Why is the"
    )
    assert last.done is True and last.eval_count == 12


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_arrive_as_typed_calls(client: ollama.AsyncClient, stream: bool) -> None:
    messages = [{"role": "user", "content": "What is the weather today in Paris?"}]
    if stream:
        parts = [p async for p in await client.chat("qwen3", messages, tools=TOOLS, stream=True)]
    else:
        parts = [await client.chat("qwen3", messages, tools=TOOLS)]
    calls = [call for part in parts for call in part.message.tool_calls or []]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_current_weather", {"location": "Paris", "format": "celsius"})
    ]


async def test_generate_stream_honours_num_predict(client: ollama.AsyncClient) -> None:
    stream = await client.generate(
        "llama3", "Tell me a story", options={"num_predict": 5}, stream=True
    )
    parts = [part async for part in stream]
    assert "".join(p.response for p in parts) == "fake reply from llama3: Tell"
    assert parts[-1].done_reason == "length" and parts[-1].eval_count == 5


async def test_format_json_gives_parseable_content(client: ollama.AsyncClient) -> None:
    reply = await client.chat(model="llama3", messages=CHAT["messages"], format="json")
    assert json.loads(reply.message.content or "")["reply"].startswith("fake reply")


async def test_embed_list_show_and_ps(client: ollama.AsyncClient, fake: FakeUpstreamThread) -> None:
    fake.configure(models=["llama3:latest", "nomic-embed-text:latest"])
    embedded = await client.embed("nomic-embed-text", ["a", "b"])
    assert [len(v) for v in embedded.embeddings] == [8, 8]
    assert len((await client.embeddings("nomic-embed-text", "a")).embedding) == 8
    listed = await client.list()
    assert [m.model for m in listed.models] == ["llama3:latest", "nomic-embed-text:latest"]
    assert all(m.size and m.modified_at and m.details for m in listed.models)
    shown = await client.show("llama3")
    assert shown.modelinfo and "tools" in (shown.capabilities or [])
    assert (await client.ps()).models == []


async def test_status_errors_raise_response_error(
    client: ollama.AsyncClient, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="status", status=500, message="out of memory")
    with pytest.raises(ollama.ResponseError) as failed:
        await client.chat(model="llama3", messages=CHAT["messages"])
    assert (failed.value.status_code, failed.value.error) == (500, "out of memory")

    fake.add_fault(kind="status", status=500, message="still out of memory")
    parts = []
    with pytest.raises(ollama.ResponseError) as streamed:
        async for part in await client.chat("llama3", CHAT["messages"], stream=True):
            parts.append(part)
    assert (streamed.value.status_code, streamed.value.error) == (500, "still out of memory")
    assert parts == []


async def test_mid_stream_error_raises_after_the_parts_sent(
    client: ollama.AsyncClient, fake: FakeUpstreamThread
) -> None:
    fake.add_fault(kind="stream_error", after_chunks=2, message="model runner crashed")
    received = []
    with pytest.raises(ollama.ResponseError) as failed:
        async for part in await client.chat("llama3", CHAT["messages"], stream=True):
            received.append(part)
    assert failed.value.error == "model runner crashed"
    assert len(received) == 2 and not any(p.done for p in received)


async def test_concurrent_streams_on_one_client_do_not_mix(client: ollama.AsyncClient) -> None:
    async def one(index: int) -> tuple[int, str]:
        prompt = [{"role": "user", "content": f"word{index}"}]
        stream = await client.chat(model=f"m{index}", messages=prompt, stream=True)
        return index, "".join([(p.message.content or "") async for p in stream])

    answers = await asyncio.gather(*(one(i) for i in range(24)))
    for index, text in answers:
        assert text.startswith(f"fake reply from m{index}: word{index}")
        assert all(w == f"word{index}" for w in text.split(": ", 1)[1].split())
