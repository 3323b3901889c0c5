"""Chat answers as Anthropic Messages objects: the Message, its content blocks, stop reason and
usage, and the error body (`{"type": "error", "error": {...}}`).

Reasoning text a backend returns (`reasoning_content` from vLLM and llama.cpp, `reasoning` from
Ollama's OpenAI API) becomes a `thinking` block with an empty `signature`: there is no Anthropic
signature to give, and a client that passes the block back gets it dropped (protocols/anthropic.py).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from triage.errors import TriageError, anthropic_type
from triage.protocols.anthropic import MessagesRequest

Block = dict[str, Any]
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Draft:
    """What a Message says besides its content: fixed when the request arrives."""

    request: MessagesRequest
    id: str = field(default_factory=lambda: new_id("msg"))


def message_object(
    draft: Draft,
    content: list[Block],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage: Block,
) -> Block:
    return {
        "id": draft.id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": draft.request.model,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": None,
        "usage": usage,
        "container": None,
    }


def usage_of(chat_usage: Any) -> Block:
    """Anthropic usage from chat usage: `input_tokens` excludes what was read from cache."""
    usage = chat_usage if isinstance(chat_usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": max(0, prompt - cached),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "cache_creation": None,
        "inference_geo": None,
        "output_tokens_details": None,
        "server_tool_use": None,
        "service_tier": None,
    }


def stop_of(choice: Block, request: MessagesRequest, called: bool) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). vLLM names the stop string it hit in `stop_reason`."""
    finish = choice.get("finish_reason")
    if called:  # some backends say "stop" after a tool call
        return "tool_use", None
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched in (request.stop_sequences or []):
        return "stop_sequence", matched
    return _STOP_REASONS.get(str(finish), "end_turn"), None


def tool_id(value: Any) -> str:
    """A chat tool call id as a tool_use id (`^[a-zA-Z0-9_-]+$`): kept when it fits."""
    if not isinstance(value, str) or not value:
        return new_id("toolu")
    return _NOT_ID.sub("_", value)


def tool_input(arguments: Any) -> Block:
    """Tool call arguments (a JSON string) as the block's `input` object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def text_block(text: str) -> Block:
    return {"type": "text", "text": text, "citations": None}


def thinking_block(text: str) -> Block:
    return {"type": "thinking", "thinking": text, "signature": ""}


def tool_block(block_id: str, name: str, arguments: Block) -> Block:
    return {
        "type": "tool_use",
        "id": block_id,
        "name": name,
        "input": arguments,
        "caller": {"type": "direct"},
    }


def thought_of(message: Block) -> str:
    thought = message.get("reasoning_content") or message.get("reasoning")
    return thought if isinstance(thought, str) else ""


def from_chat(draft: Draft, body: Block) -> Block:
    """The Message for a whole chat completion."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[Block] = []
    thought = thought_of(message)
    if thought:
        content.append(thinking_block(thought))
    if isinstance(message.get("content"), str) and message["content"]:
        content.append(text_block(message["content"]))
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    for call in calls:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        content.append(
            tool_block(tool_id(call.get("id")), name, tool_input(function.get("arguments")))
        )
    reason, sequence = stop_of(choice, draft.request, bool(calls))
    return message_object(draft, content, reason, sequence, usage_of(body.get("usage")))


def error_object(err: TriageError, request_id: str | None = None) -> Block:
    """Anthropic's error body (also the data of a stream's `error` event)."""
    return {
        "type": "error",
        "error": {"type": anthropic_type(err), "message": err.message},
        "request_id": request_id,
    }
