"""Make whatever a backend returned conform to the OpenAI spec before it leaves Triage.

Backends omit required fields (`created`, `refusal`, `logprobs`), send explicit nulls where the
spec wants a value or nothing, add provider-specific keys, or return integer error codes. Every
response is rebuilt here from the fields the spec defines, so clients never see the difference.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from triage.config.schema import Deployment
from triage.engine.base import CallKind
from triage.rawchunk import FINISH_REASONS, TextShape, passable, text_chars, trimmed

_NUMBER = (int, float)  # a tuple, not `int | float`: that builds a union on every call
_EMBEDDING = (list, str)


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    """The objects in a list a backend sent; anything else (a malformed field) is no items."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _index(value: Any, default: int) -> int:
    return value if type(value) is int and value >= 0 else default


def _common(
    body: Mapping[str, Any], deployment: Deployment, obj: str, prefix: str
) -> dict[str, Any]:
    created = body.get("created")
    if not isinstance(created, _NUMBER) or not math.isfinite(created):
        created = time.time()
    return {
        "id": str(body.get("id") or f"{prefix}-{uuid.uuid4().hex}"),
        "object": obj,
        "created": int(created),
        "model": model_of(body, deployment),
    }


def model_of(body: Mapping[str, Any], deployment: Deployment) -> str:
    """The model as the upstream names it, as the native lane relays it. litellm answers some
    providers (Ollama) with the configured `provider/model` string instead, in non-stream
    answers only: that is the upstream's name with litellm's routing prefix, which goes."""
    params = deployment.litellm_params
    model = body.get("model")
    if not model or model == params.model:
        return params.model_name
    return str(model)


def _finish(value: Any, default: str | None) -> str | None:
    if isinstance(value, str) and value in FINISH_REASONS:
        return str(value)
    if value == "eos" or value == "end_turn":
        return "stop"
    return default if value is None else "stop"


def _usage(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    prompt = raw.get("prompt_tokens")
    if not isinstance(prompt, int):
        return None
    prompt = int(prompt)
    completion = raw.get("completion_tokens")
    completion = int(completion) if isinstance(completion, int) else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_call(raw: Mapping[str, Any], *, delta: bool) -> dict[str, Any]:
    function = _mapping(raw.get("function"))
    out_fn: dict[str, Any] = {}
    if function.get("name") is not None or not delta:
        out_fn["name"] = str(function.get("name") or "")
    arguments = function.get("arguments")
    if arguments is not None or not delta:
        out_fn["arguments"] = arguments if isinstance(arguments, str) else _json(arguments)
    out: dict[str, Any] = {"function": out_fn}
    if delta:
        out["index"] = _index(raw.get("index"), 0)
    if raw.get("id") is not None or not delta:
        out["id"] = str(raw.get("id") or f"call_{uuid.uuid4().hex[:24]}")
    if raw.get("type") is not None or not delta:
        out["type"] = "function"
    return out


def _json(value: Any) -> str:
    import json

    return json.dumps(value if value is not None else {})


def _logprobs(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, Mapping) and isinstance(raw.get("content"), list):
        return {"content": raw["content"], "refusal": raw.get("refusal")}
    return None


def _message(raw: Mapping[str, Any]) -> dict[str, Any]:
    content, refusal = raw.get("content"), raw.get("refusal")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content if isinstance(content, str) else None,
        "refusal": refusal if isinstance(refusal, str) else None,
    }
    calls = raw.get("tool_calls")
    if calls:  # none, an empty list or null: the usual answer
        calls = _dicts(calls)
        if calls:
            message["tool_calls"] = [_tool_call(c, delta=False) for c in calls]
    return message


def chat_reply(body: Mapping[str, Any], deployment: Deployment) -> dict[str, Any]:
    out = _common(body, deployment, "chat.completion", "chatcmpl")
    out["choices"] = [
        {
            "index": _index(choice.get("index"), i),
            "message": _message(_mapping(choice.get("message"))),
            "finish_reason": _finish(choice.get("finish_reason"), "stop"),
            "logprobs": _logprobs(choice.get("logprobs")),
        }
        for i, choice in enumerate(_dicts(body.get("choices")))
    ]
    usage = _usage(body.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def text_reply(body: Mapping[str, Any], deployment: Deployment) -> dict[str, Any]:
    out = _common(body, deployment, "text_completion", "cmpl")
    out["choices"] = [
        {
            "index": _index(choice.get("index"), i),
            "text": str(choice.get("text") or ""),
            "finish_reason": _finish(choice.get("finish_reason"), "stop"),
            "logprobs": choice.get("logprobs")
            if isinstance(choice.get("logprobs"), dict)
            else None,
        }
        for i, choice in enumerate(_dicts(body.get("choices")))
    ]
    usage = _usage(body.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def embedding_reply(body: Mapping[str, Any], deployment: Deployment) -> dict[str, Any]:
    data = [
        {
            "object": "embedding",
            "index": _index(item.get("index"), i),
            "embedding": item["embedding"],
        }
        for i, item in enumerate(_dicts(body.get("data")))
        if isinstance(item.get("embedding"), _EMBEDDING)  # str: encoding_format=base64
    ]
    usage = _usage(body.get("usage")) or {"prompt_tokens": 0, "total_tokens": 0}
    return {
        "object": "list",
        "data": data,
        "model": model_of(body, deployment),
        "usage": {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["prompt_tokens"]},
    }


def normalize_reply(
    kind: CallKind, body: Mapping[str, Any], deployment: Deployment
) -> dict[str, Any]:
    if kind == "chat":
        return chat_reply(body, deployment)
    if kind == "completion":
        return text_reply(body, deployment)
    return embedding_reply(body, deployment)


def _delta(raw: Mapping[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if raw.get("role") is not None:
        delta["role"] = "assistant"
    if isinstance(raw.get("content"), str):
        delta["content"] = raw["content"]
    if isinstance(raw.get("refusal"), str):
        delta["refusal"] = raw["refusal"]
    calls = _dicts(raw.get("tool_calls"))
    if calls:
        delta["tool_calls"] = [_tool_call(c, delta=True) for c in calls]
    return delta


def normalize_chunk(
    chunk: Mapping[str, Any], deployment: Deployment, *, keep_usage: bool
) -> dict[str, Any]:
    text = chunk.get("object") == "text_completion"
    out = _common(
        chunk, deployment, "text_completion" if text else "chat.completion.chunk", "chatcmpl"
    )
    choices = []
    for i, choice in enumerate(_dicts(chunk.get("choices"))):
        item: dict[str, Any] = {
            "index": _index(choice.get("index"), i),
            "finish_reason": _finish(choice.get("finish_reason"), None),
        }
        if text:
            item["text"] = str(choice.get("text") or "")
        else:
            item["delta"] = _delta(_mapping(choice.get("delta")))
        if _logprobs(choice.get("logprobs")) is not None:
            item["logprobs"] = _logprobs(choice.get("logprobs"))
        choices.append(item)
    out["choices"] = choices
    usage = _usage(chunk.get("usage"))
    if keep_usage and usage is not None:
        out["usage"] = usage
    return out


def _is_empty(choice: Mapping[str, Any]) -> bool:
    delta = _mapping(choice.get("delta"))
    has_text = bool(delta.get("content") or delta.get("tool_calls") or delta.get("refusal"))
    return not has_text and choice.get("finish_reason") is None and not choice.get("text")


class StreamNormalizer:
    """Per-stream fixes that need memory of earlier chunks.

    - Some backends (and litellm) repeat a tool call's `id`, `type` and `function.name` in every
      delta; the SDK concatenates them, so only the first delta of each tool call keeps them.
    - A usage-only chunk (no choices, or only empty ones, as litellm makes them) is the usage
      chunk: passed on with `choices: []` when the client asked for usage, dropped otherwise.
    - Empty chunks after the first carry nothing and are dropped.
    - Every chunk carries the first chunk's `id` and `model` (litellm's Ollama stream makes a
      new id per chunk); a raw chunk that differs from them is rebuilt. A rebuilt first chunk's
      id gets OpenAI's prefix, as litellm's non-stream answers have it.
    """

    def __init__(self, deployment: Deployment, *, keep_usage: bool) -> None:
        self.deployment = deployment
        self.keep_usage = keep_usage
        self.usage_sent = False
        self._tools: set[tuple[int, int]] = set()
        self._count = 0
        self._last: Mapping[str, Any] | None = None
        self._shape: TextShape | None = None  # of the last raw-relayed text delta
        self._id: str | None = None  # the stream's, and its model's name: the first chunk's
        self._model = ""

    def relay_like_last(self, raw: bytes) -> tuple[bytes, int] | None:
        """What to send for a chunk whose bytes are the last raw-relayed text delta's with only
        the text changed, and that text's length; None for any other chunk (`relay` then looks
        inside it). Such a chunk is never decoded: it is what the last one was, in other words.
        """
        if self._shape is None:
            return None
        sent = self._shape.apply(raw)
        if sent is not None:
            self._count += 1
        return sent

    def relay_run(self, raw: list[bytes], start: int) -> tuple[list[bytes], int] | None:
        """`relay_like_last` for as many chunks from `start` on as have the last raw-relayed
        text delta's shape, at once (rawchunk.TextShape.run): what to send for each, and the
        length of their text in all; None when the chunk at `start` has not that shape."""
        if self._shape is None:
            return None
        sent = self._shape.run(raw, start)
        if sent is not None:
            self._count += len(sent[0])
        return sent

    def relay(
        self, chunk: dict[str, Any], raw: bytes | None
    ) -> tuple[dict[str, Any] | bytes | None, int]:
        """What to send for `chunk` (None: nothing) and how many characters of text it carries.

        Its upstream bytes when they can go as they are (rawchunk.py), else the rebuilt chunk.
        """
        if raw is not None:
            kept = (
                trimmed(raw, chunk, self.keep_usage)
                if passable(chunk) and self._same_stream(chunk)
                else None
            )
            if kept is not None:
                chars, busy = 0, False
                choices = chunk["choices"]
                for choice in choices:  # shapes checked by `passable`
                    delta = choice["delta"]
                    text = delta.get("content")
                    if text:
                        chars += len(text)
                        busy = True
                    elif "role" in delta or choice["finish_reason"] is not None:
                        busy = True
                if not busy:
                    return self._empty(chunk), 0
                if len(choices) == 1 and choices[0]["finish_reason"] is None:
                    delta = choices[0]["delta"]
                    if len(delta) == 1 and chars:  # a text delta and nothing else: a shape
                        self._shape = TextShape.of(raw, kept, delta["content"])
                return self._relayed(chunk, kept), chars
        return self(chunk), text_chars(chunk)

    def _same_stream(self, chunk: Mapping[str, Any]) -> bool:
        """Whether a raw chunk (a `passable` one) has the stream's id and model (or is the
        first, which sets them once it goes out: `_relayed`)."""
        return self._id is None or (chunk["id"] == self._id and chunk["model"] == self._model)

    def _stamp(self, out: dict[str, Any]) -> None:
        if self._id is None:
            prefix = "cmpl-" if out["object"] == "text_completion" else "chatcmpl-"
            ident = out["id"]
            self._id = ident if ident.startswith(prefix) else prefix + ident
            self._model = out["model"]
        out["id"], out["model"] = self._id, self._model

    def _relayed(self, chunk: dict[str, Any], out: bytes) -> bytes:
        if self._id is None:
            self._id, self._model = chunk["id"], chunk["model"]
        self._count += 1
        self._last = chunk
        return out

    def _empty(self, chunk: dict[str, Any]) -> dict[str, Any] | bytes | None:
        """A chunk with no text, role or finish: the first goes out (rebuilt), later ones are
        dropped, as `__call__` does."""
        return self(chunk) if not self._count else None

    def __call__(self, chunk: Mapping[str, Any]) -> dict[str, Any] | None:
        choices = _dicts(chunk.get("choices"))
        empty = all(_is_empty(c) for c in choices)
        if chunk.get("usage") and empty:
            return self.usage_chunk(chunk["usage"], chunk) if self.keep_usage else None
        if empty and self._count and not any(_mapping(c.get("delta")).get("role") for c in choices):
            return None
        out = normalize_chunk(chunk, self.deployment, keep_usage=self.keep_usage)
        self._stamp(out)
        self._dedupe_tool_calls(out)
        self.usage_sent = self.usage_sent or "usage" in out
        self._count += 1
        self._last = out
        return out

    def usage_chunk(
        self, usage: Mapping[str, Any], like: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A final `choices: []` chunk carrying usage (the backend's, or Triage's own count)."""
        base = like or self._last or {}
        out = _common(base, self.deployment, "chat.completion.chunk", "chatcmpl")
        self._stamp(out)
        out["choices"] = []
        out["usage"] = _usage(usage) or {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
        }
        self.usage_sent = True
        return out

    def _dedupe_tool_calls(self, chunk: dict[str, Any]) -> None:
        for choice in chunk["choices"]:
            for call in (choice.get("delta") or {}).get("tool_calls", ()):
                key = (choice["index"], call["index"])
                if key in self._tools:
                    call.pop("id", None)
                    call.pop("type", None)
                    call["function"].pop("name", None)
                self._tools.add(key)
