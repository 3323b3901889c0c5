"""Forced tool calls on backends that cannot force one (Ollama, through litellm).

litellm drops `tool_choice` for Ollama (it makes Ollama hang), so a client that forces a tool —
as instructor, pydantic-ai and langchain's `with_structured_output` all do — got plain text
back. Such a call is rewritten instead: the tool's parameter schema becomes Ollama's
structured-output `format` (litellm's `response_format: json_schema`), the tools leave the
request (a system message naming the tool and its description takes their place), and the JSON
answer comes back as that tool's call with `finish_reason: "tool_calls"`, streamed as
tool-call deltas. `tool_choice: "required"` with one tool is the same. With several tools the
schema is a choice of `{"name", "arguments"}` objects, one per tool, and a stream carries the
call whole in its last chunk (its name is not known before the answer is complete).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from triage.config.schema import Deployment
from triage.engine.base import Call
from triage.errors import BadRequest

# Providers whose litellm translation drops `tool_choice`.
NO_TOOL_CHOICE = frozenset({"ollama", "ollama_chat"})
_REWRITTEN = ("tools", "tool_choice", "parallel_tool_calls")
_ANY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]


def forced_tool(deployment: Deployment, call: Call) -> ForcedTool | None:
    """The rewrite a chat call needs on `deployment`, or None (most calls)."""
    choice = call.body.get("tool_choice")
    if (
        call.kind != "chat"
        or choice in (None, "auto", "none")
        or deployment.litellm_params.provider not in NO_TOOL_CHOICE
    ):
        return None
    tools = _tools(call.body.get("tools"))
    if choice == "required":
        chosen = tools
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        chosen = [t for t in tools if t.name == name][:1]
        if not chosen:
            raise BadRequest(
                f"tool_choice names `{name}`, which is not in tools", param="tool_choice"
            )
    else:
        return None  # a shape the spec does not have: the request validator's business
    if not chosen:
        raise BadRequest("tool_choice requires a tool, but tools is empty", param="tool_choice")
    return ForcedTool(tuple(chosen))


def _tools(raw: Any) -> list[Tool]:
    out = []
    for tool in raw if isinstance(raw, list) else ():
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            description = fn.get("description")
            out.append(
                Tool(
                    fn["name"],
                    description if isinstance(description, str) else "",
                    params if isinstance(params, Mapping) and params else _ANY_OBJECT,
                )
            )
    return out


@dataclass(frozen=True)
class ForcedTool:
    tools: tuple[Tool, ...]

    def schema(self) -> dict[str, Any]:
        if len(self.tools) == 1:
            return dict(self.tools[0].parameters)
        return {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": dict(t.parameters)},
                    "required": ["name", "arguments"],
                }
                for t in self.tools
            ]
        }

    def instruction(self) -> str:
        if len(self.tools) == 1:
            tool = self.tools[0]
            about = f" ({tool.description})" if tool.description else ""
            return (
                f"Call the function `{tool.name}`{about}: answer with its arguments only, "
                "as one JSON object."
            )
        names = "; ".join(
            f"`{t.name}`" + (f" ({t.description})" if t.description else "") for t in self.tools
        )
        return (
            f"Call one of these functions: {names}. Answer with one JSON object only: "
            '{"name": <the function>, "arguments": <its arguments>}.'
        )

    def rewrite(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The upstream body: no tools, the schema as the structured-output format."""
        out = {k: v for k, v in body.items() if k not in _REWRITTEN}
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": self.tools[0].name, "schema": self.schema(), "strict": True},
        }
        messages = body.get("messages")
        system = {"role": "system", "content": self.instruction()}
        out["messages"] = [system, *(messages if isinstance(messages, list) else ())]
        return out

    def parse(self, text: str) -> tuple[str, str] | None:
        """(name, arguments) of the answer; None when it is not a call of one of the tools."""
        if len(self.tools) == 1:
            return self.tools[0].name, text
        try:
            answer = json.loads(text)
        except ValueError:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("arguments"), dict):
            return None
        name = answer.get("name")
        if not any(t.name == name for t in self.tools):
            return None
        return str(name), json.dumps(answer["arguments"])

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """A non-stream answer (litellm's dump) with the JSON text turned into the call."""
        for choice in _dicts(body.get("choices")):
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
            found = self.parse(text) if isinstance(text, str) else None
            if message is None or found is None:
                continue
            message["content"] = None
            message["tool_calls"] = [_call(new_call_id(), *found)]
            if choice.get("finish_reason") != "length":
                choice["finish_reason"] = "tool_calls"
        return body

    def stream(self) -> ForcedStream:
        return ForcedStream(self)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass
class ForcedStream:
    """One stream's chunks (litellm's dumps) with their text turned into tool-call deltas."""

    forced: ForcedTool
    _started: set[int] = field(default_factory=set)
    _held: dict[int, list[str]] = field(default_factory=dict)

    def __call__(self, chunk: dict[str, Any]) -> dict[str, Any]:
        for choice in _dicts(chunk.get("choices")):
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            index = choice.get("index", 0)
            index = index if type(index) is int else 0
            text = delta.get("content")
            delta["content"] = None
            finish = choice.get("finish_reason")
            calls = self._deltas(index, text if isinstance(text, str) else "", finish is not None)
            if calls:
                delta["tool_calls"] = calls
            elif finish is not None and index in self._held:  # not a call: the text, as it was
                delta["content"] = "".join(self._held.pop(index)) or None
            if finish not in (None, "length") and index in self._started:
                choice["finish_reason"] = "tool_calls"
        return chunk

    def _deltas(self, index: int, text: str, last: bool) -> list[dict[str, Any]]:
        if len(self.forced.tools) > 1:  # the name is known only once the answer is whole
            held = self._held.setdefault(index, [])
            held.append(text)
            found = self.forced.parse("".join(held)) if last else None
            if found is None:
                return []
            self._started.add(index)
            del self._held[index]
            return [{"index": 0, **_call(new_call_id(), *found)}]
        if not text:
            return []
        out: dict[str, Any] = {"index": 0, "function": {"arguments": text}}
        if index not in self._started:
            self._started.add(index)
            out = {"index": 0, **_call(new_call_id(), self.forced.tools[0].name, text)}
        return [out]
