"""The Responses API event stream, made from a stream of chat chunks.

`ResponseEvents` is the state machine: `start()` gives `response.created` and
`response.in_progress`; `feed(chunk)` opens output items as the chunks call for them (reasoning
text, the message's text, each tool call) and emits their deltas; `finish()` closes every open
item (`*.done`, `output_item.done`) and ends with `response.completed` (or `.incomplete` when
the backend stopped at the token limit); `fail(err)` ends it with `response.failed`. Every event
carries the next `sequence_number`; `output` holds the finished items for storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triage.errors import TriageError
from triage.protocols.responses import Item, split_name
from triage.protocols.responses_output import (
    Draft,
    call_item,
    message_item,
    new_id,
    reasoning_item,
    response_object,
    text_part,
    usage_of,
)

Event = dict[str, Any]


@dataclass
class _Open:
    """An output item being streamed."""

    index: int
    id: str
    kind: str  # "message" | "function_call" | "reasoning"
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponseEvents:
    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.output: list[Item] = []
        self._slots: list[Item | None] = []  # output by index; None while the item is open
        self._seq = 0
        self._text: _Open | None = None
        self._thought: _Open | None = None
        self._calls: dict[int, _Open] = {}
        self._usage: Any = None
        self._finish: str | None = None
        self.final: Item | None = None
        self._tools = draft.request.tools

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self, status: str, **extra: Any) -> Item:
        return response_object(self.draft, status=status, output=self.output, **extra)

    def start(self) -> list[Event]:
        return [
            self._event("response.created", response=self._snapshot("in_progress")),
            self._event("response.in_progress", response=self._snapshot("in_progress")),
        ]

    def feed(self, chunk: Item) -> list[Event]:
        events: list[Event] = []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            events += self._reason(thought)
        if isinstance(delta.get("content"), str) and delta["content"]:
            events += self._say(delta["content"])
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self._call(call)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return events

    def _add(self, kind: str, prefix: str, item: Item) -> tuple[_Open, Event]:
        opened = _Open(len(self._slots), str(item.get("id") or new_id(prefix)), kind)
        self._slots.append(None)
        added = self._event(
            "response.output_item.added",
            output_index=opened.index,
            item={**item, "id": opened.id},
        )
        return opened, added

    def _reason(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._thought is None:
            self._thought, added = self._add("reasoning", "rs", reasoning_item(new_id("rs"), ""))
            part = {"type": "summary_text", "text": ""}
            events += [added, self._summary_event(self._thought, "part.added", part=part)]
        self._thought.text.append(text)
        return [*events, self._summary_event(self._thought, "text.delta", delta=text)]

    def _summary_event(self, opened: _Open, suffix: str, **fields: Any) -> Event:
        return self._event(
            f"response.reasoning_summary_{suffix}",
            item_id=opened.id,
            output_index=opened.index,
            summary_index=0,
            **fields,
        )

    def _say(self, text: str) -> list[Event]:
        events = self._close_thought()
        if self._text is None:
            item = message_item(new_id("msg"), "", status="in_progress")
            self._text, added = self._add("message", "msg", item)
            events += [added, self._part_event("response.content_part.added", text_part(""))]
        self._text.text.append(text)
        return [*events, self._part_event("response.output_text.delta", delta=text, logprobs=[])]

    def _part_event(self, kind: str, part: Item | None = None, **fields: Any) -> Event:
        assert self._text is not None
        if part is not None:
            fields["part"] = part
        return self._event(
            kind, item_id=self._text.id, output_index=self._text.index, content_index=0, **fields
        )

    def _call(self, call: Item) -> list[Event]:
        events = self._close_thought()
        index = call.get("index", 0) if isinstance(call.get("index"), int) else 0
        function = call.get("function") or {}
        opened = self._calls.get(index)
        if opened is None:
            events += self._close_text()
            call_id = str(call.get("id") or new_id("call"))
            name = str(function.get("name") or "")
            item = call_item(new_id("fc"), call_id, name, "", "in_progress", self._tools)
            opened, added = self._add("function_call", "fc", item)
            opened.call_id, opened.name = call_id, name
            self._calls[index] = opened
            events.append(added)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            opened.text.append(arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=opened.id,
                    output_index=opened.index,
                    delta=arguments,
                )
            )
        return events

    def _done(self, opened: _Open, item: Item) -> Event:
        self._slots[opened.index] = item
        self.output = [i for i in self._slots if i is not None]
        return self._event("response.output_item.done", output_index=opened.index, item=item)

    def _close_thought(self) -> list[Event]:
        opened, self._thought = self._thought, None
        if opened is None:
            return []
        text = "".join(opened.text)
        part = {"type": "summary_text", "text": text}
        events = [
            self._summary_event(opened, "text.done", text=text),
            self._summary_event(opened, "part.done", part=part),
        ]
        return [*events, self._done(opened, reasoning_item(opened.id, text))]

    def _close_text(self) -> list[Event]:
        opened = self._text
        if opened is None:
            return []
        text = "".join(opened.text)
        events = [
            self._part_event("response.output_text.done", text=text, logprobs=[]),
            self._part_event("response.content_part.done", text_part(text)),
        ]
        self._text = None
        return [*events, self._done(opened, message_item(opened.id, text))]

    def _close_calls(self) -> list[Event]:
        events: list[Event] = []
        for opened in self._calls.values():
            arguments = "".join(opened.text)
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=opened.id,
                    output_index=opened.index,
                    name=split_name(opened.name, self._tools)[1],
                    arguments=arguments,
                )
            )
            item = call_item(
                opened.id, opened.call_id, opened.name, arguments, "completed", self._tools
            )
            events.append(self._done(opened, item))
        self._calls = {}
        return events

    def finish(self) -> list[Event]:
        """Close every open item, then `response.completed` (or `.incomplete`)."""
        events = [*self._close_thought(), *self._close_text(), *self._close_calls()]
        truncated = self._finish == "length"
        final = self._snapshot(
            "incomplete" if truncated else "completed",
            usage=usage_of(self._usage),
            incomplete="max_output_tokens" if truncated else None,
        )
        self.final = final
        kind = "response.incomplete" if truncated else "response.completed"
        return [*events, self._event(kind, response=final)]

    def fail(self, err: TriageError) -> list[Event]:
        """The stream broke after it started: `response.failed` with an OpenAI-shaped error."""
        failed = self._snapshot("failed", error=err, usage=usage_of(self._usage))
        return [self._event("response.failed", response=failed)]
