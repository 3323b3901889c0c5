"""The OpenAI wire models Triage reads, and the allow-list of fields it forwards upstream.

Request models accept unknown OpenAI fields (clients send new ones all the time) but only the
fields on `CHAT_FIELDS` / `COMPLETION_FIELDS` / `EMBEDDING_FIELDS` ever leave Triage: a client
body carrying `api_base`, `api_key` or `mock_response` must never steer the upstream call. The
same holds one level down: inside each message, content part, tool call and `stream_options`
only the keys the OpenAI spec documents are forwarded (`MESSAGE_FIELDS` and its siblings).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from triage.config.schema import ServerSettings
from triage.errors import BadRequest

CHAT_FIELDS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "functions",
        "function_call",
        "reasoning_effort",
        "stream_options",
    }
)
COMPLETION_FIELDS = frozenset(
    {
        "prompt",
        "suffix",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "echo",
        "best_of",
        "user",
        "seed",
        "stream_options",
    }
)
EMBEDDING_FIELDS = frozenset({"input", "dimensions", "encoding_format", "user"})
# Inside the fields above, as the OpenAI spec documents them (every message role together).
MESSAGE_FIELDS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal", "audio"}
)
CONTENT_PART_FIELDS = frozenset(
    {"type", "text", "image_url", "input_audio", "file", "refusal", "prompt_cache_breakpoint"}
)
TOOL_CALL_FIELDS = frozenset({"id", "type", "function", "custom"})
STREAM_OPTIONS_FIELDS = frozenset({"include_usage", "include_obfuscation"})

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool | None = None
    include_obfuscation: StrictBool | None = None


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    stop: str | list[str] | None = None
    max_tokens: PositiveInt | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _stop_limit(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def wants_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: PositiveInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    suffix: str | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    echo: StrictBool | None = None
    best_of: PositiveInt | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: object) -> object:
        if value == []:
            raise ValueError("prompt must not be an empty list")
        return value


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: Annotated[int, Field(ge=1, le=65536)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if value == "" or value == []:
            raise ValueError("input must not be empty")
        return value


Request = ChatCompletionRequest | CompletionRequest | EmbeddingRequest


def forwarded(request: Request, fields: frozenset[str]) -> dict[str, Any]:
    """The allow-listed fields the client actually set, ready to send upstream: what
    `model_dump(include=fields, exclude_unset=True, exclude_none=True)` gives (declared fields in
    order, then extras; containers copied), then each message, content part, tool call and
    `stream_options` cut to its own allow-list. Built from the validated values directly, at a
    fraction of pydantic's serializer's cost; a value JSON cannot hold (a model built in code)
    takes the serializer's path."""
    try:
        return _fields(request, fields, only_set=True)
    except _Unusual:
        return _dumped(request, fields)


class _Unusual(Exception):
    """A value outside what JSON decodes to (and the two nested models): left to pydantic."""


def _fields(model: BaseModel, keys: frozenset[str], *, only_set: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    values = model.__dict__  # the declared fields, in declaration order
    allowed = model.__pydantic_fields_set__ & keys if only_set else keys
    if only_set and len(allowed) < 2:
        # Often the one field set that may go (`messages`): found by name, not by a walk
        # over twenty-odd fields; one name is in order wherever it stands. An extra set is
        # in `allowed` too but not in `values`: it goes below.
        for name in allowed:
            value = values.get(name)
            if value is not None:
                out[name] = _plain(value)
    else:
        for name, value in values.items():
            if value is not None and name in allowed:
                out[name] = _plain(value)
    extra = model.__pydantic_extra__
    if extra:  # most requests and messages carry none
        for name, value in extra.items():
            if value is not None and name in keys:
                out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """`value` as `model_dump` renders it: JSON scalars as they are, lists and objects copied
    (with their nulls: exclude_none only reaches model fields), the nested models cut down."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    if kind is list:
        return [_plain(item) for item in value]
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is Message:
        return _message(value)
    if kind is StreamOptions:
        return _fields(value, STREAM_OPTIONS_FIELDS, only_set=True)
    raise _Unusual


def _message(message: Message) -> dict[str, Any]:
    return _cut(_fields(message, MESSAGE_FIELDS, only_set=False))


def _cut(out: dict[str, Any]) -> dict[str, Any]:
    """A message's content parts and tool calls, each cut to its allow-list."""
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = [_only(part, CONTENT_PART_FIELDS) for part in content]
    calls = out.get("tool_calls")
    if calls is not None:
        out["tool_calls"] = [_only(call, TOOL_CALL_FIELDS) for call in calls]
    return out


def _dumped(request: Request, fields: frozenset[str]) -> dict[str, Any]:
    """`forwarded` by pydantic's serializer, for requests holding values JSON cannot."""
    body = request.model_dump(include=set(fields), exclude_unset=True, exclude_none=True)
    if isinstance(request, ChatCompletionRequest):
        body["messages"] = [_dumped_message(m) for m in request.messages]
    options = body.get("stream_options")
    if options is not None:
        body["stream_options"] = _only(options, STREAM_OPTIONS_FIELDS)
    return body


def _dumped_message(message: Message) -> dict[str, Any]:
    return _cut(message.model_dump(include=set(MESSAGE_FIELDS), exclude_none=True))


def _only(value: Any, keys: frozenset[str]) -> Any:
    """`value` without the keys not in `keys`, when it is an object (anything else unchanged:
    validation has had its say on the shape)."""
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k in keys}


def chat_text(request: ChatCompletionRequest) -> str:
    """All text content, for size estimates (context-window pre-checks)."""
    parts: list[str] = []
    for message in request.messages:
        if isinstance(message.content, str):
            parts.append(message.content)
        elif isinstance(message.content, list):
            parts += [str(p.get("text", "")) for p in message.content if isinstance(p, dict)]
    return "\n".join(parts)


def declared(request: Request, name: str) -> Any:
    """A field the request's own model declares; unknown fields a client sends (kept as extras
    for pass-through) must never be read as if they were ours. Read from the instance's own
    dict, which holds the declared fields only (pydantic keeps extras apart): a tenth of the cost
    of asking the class's `model_fields`, four times a request."""
    value: Any = request.__dict__.get(name)
    return value


def check_caps(server: ServerSettings, request: Request) -> None:
    """The per-request caps of `server.*`: a 400 naming the field that passes one."""
    fields = request.__dict__  # the declared fields only, as `declared` reads them
    messages = fields.get("messages")
    if messages is not None and len(messages) > server.max_messages:
        raise BadRequest(f"at most {server.max_messages} messages", param="messages")
    for name in ("max_tokens", "max_completion_tokens"):
        value = fields.get(name)
        if value is not None and value > server.max_tokens:
            raise BadRequest(f"{name} may be at most {server.max_tokens}", param=name)
