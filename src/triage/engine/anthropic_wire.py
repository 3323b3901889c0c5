"""Anthropic's Messages API as the native Anthropic lane speaks it: the body it sends (the
client's own, allow-listed), and the chat form of what comes back, which the pipeline meters
(usage) while the client gets the Messages answer or events untouched.

Usage: Anthropic counts cached prompt tokens apart (`cache_creation_input_tokens`,
`cache_read_input_tokens`); the chat form's `prompt_tokens` is their sum with `input_tokens`,
so the ledger's prompt tokens are every token the model read.
"""

from __future__ import annotations

import time
from typing import Any

from triage.config.schema import Deployment
from triage.engine.base import Call, Chunk
from triage.wire import dumps

# Messages fields that go to Anthropic as the client sent them; anything else is dropped.
FIELDS = frozenset(
    {
        "messages",
        "system",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "temperature",
        "top_k",
        "top_p",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "service_tier",
        "context_management",
    }
)
HEADERS = ("anthropic-version", "anthropic-beta")
DEFAULT_VERSION = "2023-06-01"
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def native_body(deployment: Deployment, call: Call) -> dict[str, Any]:
    """The client's Messages body, allow-listed, for the deployment's model."""
    assert call.native is not None
    body = {k: v for k, v in call.native.body.items() if k in FIELDS}
    body["model"] = deployment.litellm_params.model_name
    body["stream"] = call.stream
    return body


def messages_url(api_base: str) -> str:
    """`/v1/messages` under the deployment's api_base (given with or without `/v1`)."""
    base = api_base.rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


def chat_usage(usage: Any) -> dict[str, int] | None:
    """Anthropic's usage in chat's shape (prompt tokens include cached ones)."""
    if not isinstance(usage, dict):
        return None

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt = sum(
        count(n) for n in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = count("output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_reply(message: dict[str, Any]) -> dict[str, Any]:
    """A Messages answer in chat's shape, for metering, the ledger and the cache."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(_tool_call(block, len(calls)))
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if thoughts:
        reply["reasoning_content"] = "".join(thoughts)
    if calls:
        reply["tool_calls"] = calls
    choice = {"index": 0, "message": reply, "finish_reason": finish(message.get("stop_reason"))}
    out: dict[str, Any] = {
        "id": str(message.get("id") or "msg"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(message.get("model") or ""),
        "choices": [choice],
    }
    usage = chat_usage(message.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def finish(reason: Any) -> str:
    return FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def _tool_call(block: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": str(block.get("id") or ""),
        "type": "function",
        "function": {
            "name": str(block.get("name") or ""),
            "arguments": dumps(block.get("input") or {}).decode(),
        },
    }


class StreamTally:
    """A Messages event stream read for accounting: each read's text as one chat chunk, and
    the usage (`message_start`'s input, `message_delta`'s running output) as chat usage."""

    def __init__(self) -> None:
        self.id = "msg"
        self.model = ""
        self.usage: dict[str, Any] = {}
        self.finished = False

    def chunk(self, events: list[dict[str, Any]]) -> Chunk:
        """One chat chunk for the events of one read."""
        text: list[str] = []
        usage_seen = False
        for event in events:
            kind = event.get("type")
            if kind == "message_start":
                self._start(event.get("message"))
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                for key in ("text", "thinking", "partial_json"):
                    if isinstance(delta.get(key), str):
                        text.append(delta[key])
            elif kind == "message_delta" and isinstance(event.get("usage"), dict):
                self.usage.update(event["usage"])
                usage_seen = True
            elif kind == "message_stop":
                self.finished = True
        delta = {"content": "".join(text)} if text else {}
        chunk: Chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if delta else [],
        }
        if usage_seen:
            chunk["usage"] = chat_usage(self.usage)
        return chunk

    def _start(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        self.id = str(message.get("id") or self.id)
        self.model = str(message.get("model") or "")
        if isinstance(message.get("usage"), dict):
            self.usage.update(message["usage"])
