"""Anthropic's Messages API request (`POST /v1/messages`, `/v1/messages/count_tokens`) and its
translation to the internal chat form.

A Messages request becomes one Chat Completions request, so the whole pipeline (auth, routing,
limits, the sensitive scan, retries, metering) applies unchanged. The mapping:

- `system` (a string or text blocks) -> one system message (blocks joined by a blank line), and
  so does each message whose role is `system`;
- user `text` / `image` (base64 or url) blocks -> content parts; `tool_result` blocks -> `tool`
  messages (sent first, as chat wants them right after the assistant's calls), their text
  joined, `is_error` said in words; images inside a tool result follow as a user message;
- assistant `text` / `tool_use` blocks -> content and `tool_calls` (ids kept, `input` as JSON);
- `thinking` / `redacted_thinking` blocks the client passes back are dropped: a chat backend has
  no field that takes them (and their signatures only mean something to Anthropic, whose
  deployments get the client's own body instead: engine/anthropic_lane.py);
- `cache_control` is dropped (a chat backend caches prefixes on its own; Anthropic deployments
  get it natively);
- `tools` -> function tools; `tool_choice` auto/any/tool/none -> auto/required/function/none,
  `disable_parallel_tool_use` -> `parallel_tool_calls: false`; server tools (web search, bash,
  text editor, code execution...) and `document` blocks other than plain text are a 400 that
  names them, never dropped silently;
- `max_tokens` -> `max_completion_tokens`; `stop_sequences` -> `stop`; `temperature`, `top_p`
  as they are; `top_k` is dropped (not a Chat Completions field);
- `thinking: {type: enabled, budget_tokens}` -> `reasoning_effort` (under 4096 low, under 16384
  medium, else high; `adaptive` -> medium), as does `output_config.effort`;
  `output_config.format` (a JSON schema) -> `response_format`; `metadata.user_id` -> `user`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from triage.errors import BadRequest

Block = dict[str, Any]
Message = dict[str, Any]

_SOURCE_TYPES = ("base64", "url")
_LOW_BUDGET, _HIGH_BUDGET = 4096, 16384


class CountTokensRequest(BaseModel):
    """The fields of CountMessageTokensParams Triage reads; unknown ones are accepted and never
    forwarded."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[Any]  # blocks are checked one by one, naming the index
    system: str | list[Any] | None = None
    tools: list[Block] | None = None
    tool_choice: Block | None = None
    thinking: Block | None = None


class MessagesRequest(CountTokensRequest):
    """CreateMessageParams as Triage reads it."""

    max_tokens: Annotated[int, Field(ge=1)]
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    metadata: Block | None = None
    output_config: Block | None = None
    stream: StrictBool = False

    @property
    def user_id(self) -> str | None:
        value = (self.metadata or {}).get("user_id")
        return value if isinstance(value, str) and value else None


def to_chat(request: MessagesRequest, model: str) -> dict[str, Any]:
    """The Chat Completions body for `request`, sent to `model` (the resolved name)."""
    body = _conversation(request, model)
    body["max_completion_tokens"] = request.max_tokens
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop_sequences:
        body["stop"] = request.stop_sequences
    if request.user_id is not None:
        body["user"] = request.user_id
    body.update(_output_config(request.output_config))
    return body


def _output_config(config: Block | None) -> dict[str, Any]:
    """`output_config.effort` as `reasoning_effort` (xhigh and max as high), and
    `output_config.format` (a JSON schema) as `response_format`."""
    out: dict[str, Any] = {}
    effort = (config or {}).get("effort")
    if effort in ("low", "medium", "high", "xhigh", "max"):
        out["reasoning_effort"] = effort if effort in ("low", "medium", "high") else "high"
    fmt = (config or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise BadRequest("output_config.format needs a `schema`", param="output_config")
        schema = {"name": "output", "schema": fmt["schema"]}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    return out


def _conversation(request: CountTokensRequest, model: str) -> dict[str, Any]:
    """What count_tokens counts too: the messages, system prompt, tools and their choice."""
    messages: list[Message] = []
    system = system_text(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        messages += _turn(message, f"messages[{index}]")
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.tools:
        body["tools"] = chat_tools(request.tools)
    choice = request.tool_choice
    if choice is not None and request.tools:
        body.update(chat_tool_choice(choice))
    effort = reasoning_effort(request.thinking)
    if effort is not None:
        body["reasoning_effort"] = effort
    return body


def conversation(request: CountTokensRequest, model: str) -> dict[str, Any]:
    """The chat form of a count_tokens request (no sampling fields)."""
    return _conversation(request, model)


def system_text(system: str | list[Any] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise BadRequest("system blocks must be text blocks", param=f"system[{index}]")
        texts.append(_string(block, "text", f"system[{index}]"))
    return "\n\n".join(texts)


def _turn(message: Any, where: str) -> list[Message]:
    if not isinstance(message, dict):
        raise BadRequest("each message must be an object", param=where)
    role = message.get("role")
    content = message.get("content")
    if role not in ("user", "assistant", "system"):
        raise BadRequest(f"unknown message role `{role}` (user, assistant or system)", param=where)
    if role == "system":  # Claude Code 2.1 sends some; the spec allows them
        return [{"role": "system", "content": system_text(content)}]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequest("content must be a string or a list of blocks", param=f"{where}.content")
    blocks = [_block(b, f"{where}.content[{i}]") for i, b in enumerate(content)]
    if role == "assistant":
        return [_assistant(blocks)]
    return _user(blocks)


Located = tuple[Block, str]  # a block and where it is in the request, for error messages


def _block(block: Any, where: str) -> Located:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise BadRequest("each content block must be an object with a `type`", param=where)
    return block, where


def _assistant(blocks: list[Located]) -> Message:
    texts: list[str] = []
    calls: list[Block] = []
    for block, at in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(_string(block, "text", at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind not in ("thinking", "redacted_thinking"):
            raise _unsupported(kind, at, "text, tool_use, thinking, redacted_thinking")
    out: Message = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = calls
    elif out["content"] is None:
        out["content"] = ""
    return out


def _tool_call(block: Block, where: str) -> Block:
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise BadRequest("tool_use `input` must be an object", param=f"{where}.input")
    return {
        "id": _string(block, "id", where),
        "type": "function",
        "function": {
            "name": _string(block, "name", where),
            "arguments": json.dumps(arguments, ensure_ascii=False),
        },
    }


def _user(blocks: list[Located]) -> list[Message]:
    """Tool results first (chat wants them right after the assistant's calls), then the rest."""
    results: list[Message] = []
    parts: list[Block] = []
    for block, at in blocks:
        if block["type"] == "tool_result":
            message, images = _tool_result(block, at)
            results.append(message)
            parts += images
        else:
            parts.append(_part(block, at))
    if not parts:
        return results
    if all(p["type"] == "text" for p in parts):  # plain text suits every backend
        return [*results, {"role": "user", "content": "".join(p["text"] for p in parts)}]
    return [*results, {"role": "user", "content": parts}]


def _part(block: Block, where: str) -> Block:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": _string(block, "text", where)}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _image_url(block, where)}}
    if kind == "document" and (block.get("source") or {}).get("type") == "text":
        return {"type": "text", "text": _string(block["source"], "data", f"{where}.source")}
    raise _unsupported(kind, where, "text, image, tool_result, plain-text document")


def _image_url(block: Block, where: str) -> str:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind not in _SOURCE_TYPES or not isinstance(source, dict):
        raise BadRequest(
            "image blocks need a `source` of type base64 or url (file sources need "
            "Anthropic's file store, which Triage does not have)",
            param=f"{where}.source",
        )
    if kind == "url":
        return _string(source, "url", f"{where}.source")
    media = _string(source, "media_type", f"{where}.source")
    return f"data:{media};base64,{_string(source, 'data', f'{where}.source')}"


def _tool_result(block: Block, where: str) -> tuple[Message, list[Block]]:
    content = block.get("content", "")
    texts: list[str] = []
    images: list[Block] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for index, inner in enumerate(content):
            part = _part(*_block(inner, f"{where}.content[{index}]"))
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    else:
        raise BadRequest("tool_result content must be a string or blocks", param=where)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    message = {"role": "tool", "tool_call_id": _string(block, "tool_use_id", where)}
    return {**message, "content": text}, images


def chat_tools(tools: list[Block]) -> list[Block]:
    """Client tools in chat's shape; a server tool is a 400 that names it."""
    out = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise BadRequest(
                f"{where}: the server tool `{kind}` cannot run here: Triage sends Messages "
                "requests to chat-completions backends, which only call client tools; define "
                "it as a tool with a `name` and an `input_schema` instead",
                param=where,
            )
        function: Block = {"name": _string(tool, "name", where)}
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise BadRequest(f"{where} needs an `input_schema` object", param=where)
        function["parameters"] = schema
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: Block) -> dict[str, Any]:
    """`tool_choice` (and `disable_parallel_tool_use`) as chat fields."""
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind in ("auto", "none"):
        out["tool_choice"] = kind
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "tool":
        name = _string(choice, "name", "tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise BadRequest(f"unknown tool_choice type `{kind}`", param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def reasoning_effort(thinking: Block | None) -> str | None:
    kind = (thinking or {}).get("type")
    if kind == "adaptive":
        return "medium"
    if kind != "enabled":
        return None
    assert thinking is not None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise BadRequest("thinking.budget_tokens must be a positive integer", param="thinking")
    return "low" if budget < _LOW_BUDGET else "medium" if budget < _HIGH_BUDGET else "high"


def _string(block: dict[str, Any], name: str, where: str) -> str:
    value = block.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"`{name}` must be a string", param=f"{where}.{name}")
    return value


def _unsupported(kind: str, where: str, supported: str) -> BadRequest:
    return BadRequest(
        f"content blocks of type `{kind}` are not supported here (supported: {supported})",
        param=where,
    )
