"""The Messages API event stream, made from a stream of chat chunks.

`MessageEvents` is the state machine: `start()` gives `message_start` (and a `ping`, as
Anthropic sends one); `feed(chunk)` opens content blocks as the chunks call for them (reasoning
text as a `thinking` block, the text, each tool call as a `tool_use` block) and emits their
deltas (`thinking_delta`, `text_delta`, `input_json_delta`); a block is closed
(`content_block_stop`) when the next one opens, since Messages blocks never interleave;
`finish()` closes the open block and ends with `message_delta` (stop reason, usage) and
`message_stop`; `fail(err)` ends the stream with an `error` event.

Backends stream parallel tool calls one after the other; a delta for a call whose block was
already closed cannot be sent any more in Anthropic's format, and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triage.errors import TriageError
from triage.protocols.anthropic_output import (
    Block,
    Draft,
    error_object,
    message_object,
    stop_of,
    text_block,
    thinking_block,
    tool_block,
    tool_id,
    usage_of,
)

Event = dict[str, Any]


@dataclass
class _Open:
    """The content block being streamed."""

    index: int
    kind: str  # "text" | "thinking" | "tool_use"
    call: int | None = None  # the chat tool call index of a tool_use block
    parts: list[str] = field(default_factory=list)


class MessageEvents:
    def __init__(self, draft: Draft, request_id: str | None = None) -> None:
        self.draft = draft
        self.request_id = request_id
        self._blocks = 0
        self._open: _Open | None = None
        self._closed_calls: set[int] = set()
        self._called = False
        self._usage: Any = None
        self._choice: Block = {}

    def start(self) -> list[Event]:
        message = message_object(self.draft, [], None, None, usage_of(None))
        return [{"type": "message_start", "message": message}, ping()]

    def feed(self, chunk: Block) -> list[Event]:
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        events: list[Event] = []
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            events += self._delta("thinking", None, {"type": "thinking_delta", "thinking": thought})
        if isinstance(delta.get("content"), str) and delta["content"]:
            events += self._delta("text", None, {"type": "text_delta", "text": delta["content"]})
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self._call(call)
        if choice.get("finish_reason"):
            self._choice = choice
        return events

    def _delta(self, kind: str, call: int | None, delta: Event) -> list[Event]:
        events: list[Event] = []
        opened = self._open
        if opened is None or opened.kind != kind or opened.call != call:
            events += self._close()
            start = thinking_block("") if kind == "thinking" else text_block("")
            events.append(self._start(kind, call, start))
        assert self._open is not None
        return [*events, {"type": "content_block_delta", "index": self._open.index, "delta": delta}]

    def _start(self, kind: str, call: int | None, block: Block) -> Event:
        self._open = _Open(self._blocks, kind, call)
        self._blocks += 1
        return {"type": "content_block_start", "index": self._open.index, "content_block": block}

    def _call(self, call: Block) -> list[Event]:
        index = call.get("index", 0) if isinstance(call.get("index"), int) else 0
        if index in self._closed_calls:
            return []  # see the module docstring
        function = call.get("function") or {}
        events: list[Event] = []
        opened = self._open
        if opened is None or opened.call != index:
            events += self._close()
            name = str(function.get("name") or "")
            block = tool_block(tool_id(call.get("id")), name, {})
            events.append(self._start("tool_use", index, block))
            self._called = True
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            assert self._open is not None
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append(
                {"type": "content_block_delta", "index": self._open.index, "delta": delta}
            )
        return events

    def _close(self) -> list[Event]:
        opened, self._open = self._open, None
        if opened is None:
            return []
        if opened.call is not None:
            self._closed_calls.add(opened.call)
        return [{"type": "content_block_stop", "index": opened.index}]

    def finish(self) -> list[Event]:
        """Close the open block, then `message_delta` and `message_stop`."""
        events = self._close()
        reason, sequence = stop_of(self._choice, self.draft.request, self._called)
        usage = usage_of(self._usage)
        delta = {
            "stop_reason": reason,
            "stop_sequence": sequence,
            "stop_details": None,
            "container": None,
        }
        return [
            *events,
            {"type": "message_delta", "delta": delta, "usage": _delta_usage(usage)},
            {"type": "message_stop"},
        ]

    def fail(self, err: TriageError) -> list[Event]:
        """The stream broke after it started: an `error` event, as Anthropic sends it."""
        return [error_object(err, self.request_id)]


def ping() -> Event:
    return {"type": "ping"}


def _delta_usage(usage: Block) -> Block:
    """message_delta's usage: cumulative counts (input too: it was unknown at message_start)."""
    keys = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens_details",
        "server_tool_use",
    )
    return {k: usage[k] for k in keys}
