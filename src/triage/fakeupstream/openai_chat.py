"""OpenAI `POST /v1/chat/completions`: plain JSON and SSE, with n, max_tokens, stop, tools,
response_format, logprobs, seed and stream_options.include_usage.
"""

from __future__ import annotations

import json
import time
from itertools import zip_longest
from typing import Any

from aiohttp import web

from triage.fakeupstream.error_bodies import BadRequest, int_field, stop_list
from triage.fakeupstream.generation import (
    Generation,
    Spec,
    choose_tool,
    generate,
    last_user_text,
    logprob_entries,
    pieces,
    prompt_tokens,
    quote,
)
from triage.fakeupstream.streaming import Call, Frame, pause_before_answer, send_stream

FINGERPRINT = "fp_fake"
SSE = "text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"


def _spec(call: Call, index: int) -> Spec:
    body = call.body
    cap = int_field(body, "max_completion_tokens", None)
    cap = int_field(body, "max_tokens", None) if cap is None else cap
    fmt = body.get("response_format")
    fmt = fmt if isinstance(fmt, dict) else {}
    schema = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
    seed = body.get("seed")
    return Spec(
        model=call.model,
        prompt=last_user_text(body["messages"]),
        length=call.settings.completion_tokens,
        cap=cap,
        stop=stop_list(body.get("stop")),
        json_mode=fmt.get("type") in ("json_object", "json_schema"),
        schema=schema.get("schema") if isinstance(schema, dict) else None,
        offset=index + (seed if isinstance(seed, int) else 0),
        tool=choose_tool(body.get("tools"), body.get("tool_choice"), body["messages"]),
    )


def usage_of(prompt: int, gens: list[Generation]) -> dict[str, int]:
    completion = sum(g.completion_tokens for g in gens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _top_logprobs(body: dict[str, Any]) -> int | None:
    """How many alternatives per token, or None when logprobs were not requested."""
    if not body.get("logprobs"):
        return None
    return int_field(body, "top_logprobs", 0) or 0


async def chat_completions(call: Call) -> web.StreamResponse:
    body = call.body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array")
    n = int_field(body, "n", 1, minimum=1) or 1
    gens = [generate(_spec(call, i)) for i in range(n)]
    usage = usage_of(prompt_tokens(messages), gens)
    top = _top_logprobs(body)
    if call.stream:
        return await _stream(call, gens, usage, top)
    await pause_before_answer(call, max(g.completion_tokens for g in gens))
    return web.json_response(
        {
            "id": f"chatcmpl-fake{call.number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [_choice(i, g, top) for i, g in enumerate(gens)],
            "usage": usage,
            "service_tier": "default",
        }
    )


def _choice(index: int, gen: Generation, top: int | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if gen.tool is not None:
        message["tool_calls"] = [
            {
                "id": gen.tool.id,
                "type": "function",
                "function": {"name": gen.tool.name, "arguments": gen.tool.arguments_json},
            }
        ]
    else:
        message["content"] = gen.text
    logprobs = None
    if top is not None and gen.tool is None:
        logprobs = {"content": logprob_entries(gen.tokens, 0, top), "refusal": None}
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": gen.finish}


class ChunkMaker:
    """Encodes `chat.completion.chunk` SSE frames around a pre-serialised common head."""

    def __init__(self, call: Call, include_usage: bool) -> None:
        head = {
            "id": f"chatcmpl-fake{call.number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
            "system_fingerprint": FINGERPRINT,
        }
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        # OpenAI sends "usage": null on every chunk once include_usage is on.
        self._usage = ',"usage":null' if include_usage else ""

    def frame(self, choices: str, usage: dict[str, int] | None = None) -> bytes:
        tail = f',"usage":{json.dumps(usage)}' if usage is not None else self._usage
        return f'data: {self._head},"choices":{choices}{tail}}}\n\n'.encode()

    def delta(self, index: int, delta: dict[str, Any], logprobs: Any = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}
        return self.frame(f"[{json.dumps(choice, separators=(',', ':'))}]")

    def content(self, index: int, text: str) -> bytes:
        return self.frame(
            f'[{{"index":{index},"delta":{{"content":{quote(text)}}},'
            '"logprobs":null,"finish_reason":null}]'
        )

    def finish(self, index: int, reason: str) -> bytes:
        return self.frame(
            f'[{{"index":{index},"delta":{{}},"logprobs":null,"finish_reason":"{reason}"}}]'
        )


async def _stream(
    call: Call, gens: list[Generation], usage: dict[str, int], top: int | None
) -> web.StreamResponse:
    send_usage = usage_in_stream(call)
    maker = ChunkMaker(call, send_usage)
    per_choice = [_choice_frames(maker, call, i, g, top) for i, g in enumerate(gens)]
    frames = per_choice[0] if len(per_choice) == 1 else _interleave(per_choice)

    def finish() -> bytes:
        tail = [maker.finish(i, g.finish) for i, g in enumerate(gens)]
        if send_usage:
            tail.append(maker.frame("[]", usage))
        tail.append(DONE)
        return b"".join(tail)

    return await send_stream(call, frames, finish, error_frame, SSE)


def _interleave(per_choice: list[list[Frame]]) -> list[Frame]:
    """Choices take turns, like OpenAI's n > 1 streams; a step's tokens are paced once."""
    frames: list[Frame] = []
    for step in zip_longest(*per_choice):
        present = [f for f in step if f is not None]
        frames.extend((data, tokens if k == 0 else 0) for k, (data, tokens) in enumerate(present))
    return frames


def usage_in_stream(call: Call) -> bool:
    """Whether the stream ends with a usage chunk: asked for and not disabled by settings."""
    options = call.body.get("stream_options")
    asked = isinstance(options, dict) and bool(options.get("include_usage"))
    return asked and call.settings.count_usage_in_stream


def error_frame(message: str) -> bytes:
    """A mid-stream error as OpenAI sends it (the openai SDK raises APIError on it)."""
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return f"data: {json.dumps(error)}\n\n".encode()


def _choice_frames(
    maker: ChunkMaker, call: Call, index: int, gen: Generation, top: int | None
) -> list[Frame]:
    size = call.settings.chunk_tokens
    frames: list[Frame] = [(maker.delta(index, {"role": "assistant", "content": ""}), 0)]
    if gen.tool is not None:
        header = {
            "index": 0,
            "id": gen.tool.id,
            "type": "function",
            "function": {"name": gen.tool.name, "arguments": ""},
        }
        frames.append((maker.delta(index, {"tool_calls": [header]}), 0))
        args = pieces(gen.tool.arguments_json)
        for at in range(0, len(args), size):
            part = {"index": 0, "function": {"arguments": "".join(args[at : at + size])}}
            frames.append((maker.delta(index, {"tool_calls": [part]}), len(args[at : at + size])))
        return frames
    for at in range(0, len(gen.tokens), size):
        group = gen.tokens[at : at + size]
        text = "".join(group)
        if top is None:
            frames.append((maker.content(index, text), len(group)))
        else:
            logprobs = {"content": logprob_entries(group, at, top), "refusal": None}
            frames.append((maker.delta(index, {"content": text}, logprobs), len(group)))
    return frames
