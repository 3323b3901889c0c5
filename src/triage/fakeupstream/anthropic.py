"""A minimal Anthropic Messages API, `POST /v1/messages`: plain JSON and the SSE event sequence
(message_start, content_block_*, message_delta, message_stop), enough for LiteLLM's anthropic
provider pointed at this server with `api_base`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from triage.fakeupstream.error_bodies import BadRequest, int_field, stop_list
from triage.fakeupstream.generation import (
    Generation,
    Spec,
    choose_tool,
    content_text,
    generate,
    last_user_text,
    pieces,
    prompt_tokens,
)
from triage.fakeupstream.streaming import Call, Frame, pause_before_answer, send_stream

SSE = "text/event-stream; charset=utf-8"
# With `thinking` enabled the answer opens with this signed thinking block, as Claude's do.
THINKING = {"type": "thinking", "thinking": "Let me think.", "signature": "fake-signature=="}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _generation(call: Call) -> tuple[Generation, int]:
    body = call.body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    cap = int_field(body, "max_tokens", None, minimum=1)
    if cap is None:
        raise BadRequest("max_tokens: Field required")
    spec = Spec(
        model=call.model,
        prompt=last_user_text(messages),
        length=call.settings.completion_tokens,
        cap=cap,
        stop=stop_list(body.get("stop_sequences")),
        tool=choose_tool(body.get("tools"), body.get("tool_choice"), messages),
    )
    gen = generate(spec)
    system = content_text(body.get("system"))
    return gen, prompt_tokens(messages, [system] if system else [])


def _content(gen: Generation) -> list[dict[str, Any]]:
    if gen.tool is not None:
        return [
            {
                "type": "tool_use",
                "id": f"toolu_{gen.tool.id[5:]}",
                "name": gen.tool.name,
                "input": gen.tool.arguments,
            }
        ]
    return [{"type": "text", "text": gen.text}]


def _thinks(call: Call) -> bool:
    thinking = call.body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def _stop_reason(gen: Generation) -> str:
    return "stop_sequence" if gen.stop_sequence else _STOP_REASONS[gen.finish]


async def messages(call: Call) -> web.StreamResponse:
    gen, count = _generation(call)
    if call.stream:
        return await _stream(call, gen, count)
    await pause_before_answer(call, gen.completion_tokens)
    return web.json_response(
        {
            "id": f"msg_fake{call.number}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [THINKING, *_content(gen)] if _thinks(call) else _content(gen),
            "stop_reason": _stop_reason(gen),
            "stop_sequence": gen.stop_sequence,
            "usage": {"input_tokens": count, "output_tokens": gen.completion_tokens},
        }
    )


async def _stream(call: Call, gen: Generation, count: int) -> web.StreamResponse:
    index = 1 if _thinks(call) else 0  # of the answer's block, after a thinking block
    frames = _opening_frames(call, gen, count) + _delta_frames(
        gen, call.settings.chunk_tokens, index
    )

    def finish() -> bytes:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(gen), "stop_sequence": gen.stop_sequence},
            "usage": {"output_tokens": gen.completion_tokens},
        }
        return b"".join(
            [
                _event("content_block_stop", {"type": "content_block_stop", "index": index}),
                _event("message_delta", delta),
                _event("message_stop", {"type": "message_stop"}),
            ]
        )

    return await send_stream(call, frames, finish, _error_event, SSE)


def _error_event(message: str) -> bytes:
    error = {"type": "overloaded_error", "message": message}
    return _event("error", {"type": "error", "error": error})


def _opening_frames(call: Call, gen: Generation, count: int) -> list[Frame]:
    start: dict[str, Any] = {
        "id": f"msg_fake{call.number}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": count, "output_tokens": 1},
    }
    block = _content(gen)[0]
    empty = {**block, "input": {}} if gen.tool is not None else {"type": "text", "text": ""}
    thinks = _thinks(call)
    opening = {"type": "content_block_start", "index": int(thinks), "content_block": empty}
    frames: list[Frame] = [
        (_event("message_start", {"type": "message_start", "message": start}), 0),
        (_event("content_block_start", opening), 0),
        (_event("ping", {"type": "ping"}), 0),
    ]
    if thinks:
        frames[1:1] = _thinking_frames()
    return frames


def _thinking_frames() -> list[Frame]:
    """The signed thinking block, streamed as Anthropic does: thinking, then its signature."""
    empty = {"type": "thinking", "thinking": "", "signature": ""}
    thought = {"type": "thinking_delta", "thinking": THINKING["thinking"]}
    signed = {"type": "signature_delta", "signature": THINKING["signature"]}
    events = [
        {"type": "content_block_start", "index": 0, "content_block": empty},
        {"type": "content_block_delta", "index": 0, "delta": thought},
        {"type": "content_block_delta", "index": 0, "delta": signed},
        {"type": "content_block_stop", "index": 0},
    ]
    return [(_event(str(e["type"]), e), 0) for e in events]


def _delta_frames(gen: Generation, size: int, index: int = 0) -> list[Frame]:
    if gen.tool is not None:
        parts, key, kind = pieces(gen.tool.arguments_json), "partial_json", "input_json_delta"
    else:
        parts, key, kind = gen.tokens, "text", "text_delta"
    frames: list[Frame] = []
    for at in range(0, len(parts), size):
        group = parts[at : at + size]
        delta = {"type": kind, key: "".join(group)}
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        frames.append((_event("content_block_delta", event), len(group)))
    return frames
