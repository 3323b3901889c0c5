"""The Responses API request (`POST /v1/responses`) and its translation to the internal chat form.

A Responses request becomes one Chat Completions request, so the whole pipeline (auth, routing,
limits, the sensitive scan, retries, metering) applies unchanged. What chat backends cannot do is
refused with a 400 that names it, never dropped silently: built-in tools (web search, file
search, code interpreter, computer use...), file inputs and item references. Reasoning items the
client sends back are dropped: a chat backend has no field that takes them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from triage.errors import BadRequest

Item = dict[str, Any]
Message = dict[str, Any]

# The tool types a chat backend can run: the client runs them and sends the result back.
FUNCTION_TOOLS = frozenset({"function"})
NAMESPACE_SEPARATOR = "__"  # chat function names allow [A-Za-z0-9_-] only
TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "refusal"})


class ResponsesRequest(BaseModel):
    """The fields of CreateResponse Triage reads; unknown ones are accepted and never forwarded."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[Any] | None = None  # items are checked one by one, naming the index
    instructions: str | None = None
    tools: list[Item] | None = None
    tool_choice: str | Item | None = None
    parallel_tool_calls: StrictBool | None = None
    text: Item | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    reasoning: Item | None = None
    metadata: Annotated[dict[str, str], Field(max_length=16)] | None = None
    prompt_cache_key: str | None = Field(default=None, max_length=1024)
    store: StrictBool | None = None
    previous_response_id: str | None = Field(default=None, max_length=256)
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None
    stream: StrictBool = False

    @property
    def stores(self) -> bool:
        return self.store is not False  # the API's default is to store


def to_chat(request: ResponsesRequest, history: list[Item]) -> dict[str, Any]:
    """The Chat Completions body for `request`, after the stored `history` it continues."""
    messages: list[Message] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    for item in [*history, *input_items(request)]:
        _add_item(messages, item)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(_sampling(request))
    if request.tools:
        body["tools"] = chat_tools(request.tools, request.model)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(request.tool_choice)
    response_format = chat_response_format(request.text)
    if response_format is not None:
        body["response_format"] = response_format
    return body


def input_items(request: ResponsesRequest) -> list[Item]:
    """The request's input as a list of items (a string is one user message)."""
    if request.input is None:
        return []
    if isinstance(request.input, str):
        return [{"type": "message", "role": "user", "content": request.input}]
    for index, item in enumerate(request.input):
        if not isinstance(item, dict):
            raise BadRequest("each input item must be an object", param=f"input[{index}]")
    return list(request.input)


def _sampling(request: ResponsesRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("temperature", "top_p", "user"):
        value = getattr(request, name)
        if value is not None:
            out[name] = value
    if request.max_output_tokens is not None:
        out["max_completion_tokens"] = request.max_output_tokens
    effort = (request.reasoning or {}).get("effort")
    if isinstance(effort, str) and effort != "none":
        out["reasoning_effort"] = effort
    return out


def _add_item(messages: list[Message], item: Item) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        messages.append(_message(item))
    elif kind == "function_call":
        _add_tool_call(messages, item)
    elif kind == "function_call_output":
        messages.append(
            {
                "role": "tool",
                "tool_call_id": _text_field(item, "call_id"),
                "content": _output_text(item.get("output")),
            }
        )
    elif kind == "reasoning":
        return  # a chat backend takes no reasoning items back
    else:
        raise BadRequest(
            f"input items of type `{kind}` are not supported by Triage's Responses API "
            "(supported: message, function_call, function_call_output, reasoning)",
            param="input",
        )


def _message(item: Item) -> Message:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise BadRequest(f"unknown message role `{role}`", param="input")
    # Chat backends (local ones especially) know `system`; `developer` means the same here.
    chat_role = "system" if role == "developer" else role
    return {"role": chat_role, "content": _content(item.get("content"))}


def _content(content: Any) -> str | list[Item]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest("message content must be a string or a list of parts", param="input")
    parts = [_part(p) for p in content]
    if all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)  # plain text suits every backend
    return parts


def _part(part: Any) -> Item:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        assert isinstance(part, dict)
        return {"type": "text", "text": str(part.get("text", part.get("refusal", "")))}
    if kind == "input_image":
        assert isinstance(part, dict)
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise BadRequest(
                "input_image needs an `image_url` (a URL or a data: URL); file_id images need "
                "OpenAI's file store, which Triage does not have",
                param="input",
            )
        image: Item = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise BadRequest(
        f"content parts of type `{kind}` are not supported (supported: input_text, "
        "output_text, input_image)",
        param="input",
    )


def _add_tool_call(messages: list[Message], item: Item) -> None:
    call = {
        "id": _text_field(item, "call_id"),
        "type": "function",
        "function": {"name": _call_name(item), "arguments": item.get("arguments", "")},
    }
    last = messages[-1] if messages else None
    # Consecutive calls (and the text before them) are one assistant turn in chat.
    if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
        last["tool_calls"] = [call]
    elif last is not None and last["role"] == "assistant":
        last["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _call_name(item: Item) -> str:
    name = _text_field(item, "name")
    namespace = item.get("namespace")
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if isinstance(namespace, str) else name


def _text_field(item: Item, name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{item.get('type')} items need a `{name}` string", param="input")
    return value


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    raise BadRequest("function_call_output needs an `output`", param="input")


def chat_tools(tools: list[Item], model: str) -> list[Item]:
    """Function tools in chat's shape (a namespace's functions as `<namespace>__<name>`); a
    built-in tool is a 400 that names it."""
    out = []
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "namespace" and isinstance(tool.get("tools"), list):
            prefix = f"{_tool_name(tool, index)}{NAMESPACE_SEPARATOR}"
            out += [_chat_function(t, index, model, prefix) for t in tool["tools"]]
        else:
            out.append(_chat_function(tool, index, model, ""))
    return out


def _chat_function(tool: Item, index: int, model: str, prefix: str) -> Item:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind not in FUNCTION_TOOLS:
        raise BadRequest(
            f"tools[{index}]: the built-in tool `{kind}` cannot run on `{model}`: Triage "
            "sends Responses requests to chat-completions backends, which only call "
            "function tools; define it as a `function` tool instead",
            param=f"tools[{index}]",
            code="unsupported_tool",
        )
    function: Item = {"name": prefix + _tool_name(tool, index)}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def split_name(name: str, tools: list[Item] | None) -> tuple[str | None, str]:
    """(namespace, name) of a chat tool call, undoing `chat_tools`' flattening."""
    namespace, sep, short = name.partition(NAMESPACE_SEPARATOR)
    spaces = {t.get("name") for t in tools or [] if t.get("type") == "namespace"}
    return (namespace, short) if sep and namespace in spaces else (None, name)


def _tool_name(tool: Item, index: int) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"tools[{index}] needs a `name`", param=f"tools[{index}].name")
    return name


def chat_tool_choice(choice: str | Item) -> str | Item:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise BadRequest(f"unknown tool_choice `{choice}`", param="tool_choice")
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return str(choice["mode"])
    raise BadRequest(
        f"tool_choice of type `{choice.get('type')}` is not supported (only function tools "
        "run on chat-completions backends)",
        param="tool_choice",
    )


def chat_response_format(text: Item | None) -> Item | None:
    """`text.format` as chat's `response_format` (None for plain text)."""
    fmt = (text or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
            raise BadRequest("text.format json_schema needs `name` and `schema`", param="text")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise BadRequest(f"unknown text.format type `{fmt['type']}`", param="text.format")
