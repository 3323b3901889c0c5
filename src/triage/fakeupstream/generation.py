"""Deterministic fake generation shared by every protocol: reply tokens, usage, tool calls, JSON.

A token is a word. Replies read "fake reply from <model>: " followed by words of the last user
message (or filler), so tests can predict them. Nothing here touches HTTP.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_PIECE = re.compile(r"\s*\S+")


def quote(text: str) -> str:
    """`text` as a JSON string literal; the C encoder, without json.dumps' per-call setup."""
    return encode_basestring_ascii(text)


def content_text(content: Any) -> str:
    """Plain text of a message `content` in any protocol's shape (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (
            content_text(p.get("text", p.get("content"))) for p in content if isinstance(p, dict)
        )
        return " ".join(p for p in parts if p)
    return ""


def count_words(texts: Iterable[str]) -> int:
    return sum(len(t.split()) for t in texts)


def prompt_tokens(messages: Any, extra: Sequence[str] = ()) -> int:
    """Prompt size: words in every message's content (at least 1, like a real tokenizer)."""
    texts = [content_text(m.get("content")) for m in _dicts(messages)]
    return max(1, count_words([*texts, *extra]))


def last_message(messages: Any) -> tuple[str, str]:
    """(role, text) of the last message, or ("", "") when there is none."""
    items = _dicts(messages)
    if not items:
        return "", ""
    return str(items[-1].get("role", "")), content_text(items[-1].get("content"))


def last_user_text(messages: Any) -> str:
    for message in reversed(_dicts(messages)):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [m for m in items if isinstance(m, dict)] if isinstance(items, list) else []


def pieces(text: str) -> list[str]:
    """Split text into word tokens that keep their leading whitespace, so "".join round-trips."""
    return _PIECE.findall(text)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Spec:
    """What to generate, protocol-neutral."""

    model: str
    prompt: str
    length: int
    cap: int | None = None
    stop: Sequence[str] = ()
    json_mode: bool = False
    schema: Mapping[str, Any] | None = None
    offset: int = 0
    tool: tuple[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Generation:
    tokens: list[str] = field(default_factory=list)
    finish: str = "stop"
    tool: ToolCall | None = None
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        if self.tool is not None:
            return max(1, len(pieces(self.tool.arguments_json)))
        return len(self.tokens)


def generate(spec: Spec) -> Generation:
    if spec.tool is not None:
        name, schema = spec.tool
        args = fake_object(schema, hint_words(spec.prompt))
        call_id = f"call_{zlib.crc32(f'{name}{spec.prompt}{spec.offset}'.encode()):08x}fake"
        return Generation(finish="tool_calls", tool=ToolCall(call_id, name, args))
    count = spec.length if spec.cap is None else max(0, min(spec.length, spec.cap))
    finish = "length" if spec.cap is not None and spec.cap < spec.length else "stop"
    words = reply_words(spec.model, spec.prompt, count, spec.offset)
    if spec.schema is not None and spec.schema:
        # A JSON value matching the schema, as real servers' constrained decoding makes one.
        value = fake_value(spec.schema, hint_words(spec.prompt), spec.schema)
        tokens = pieces(json.dumps(value))
    elif spec.json_mode:
        tokens = json_tokens(words)
    else:
        tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
    matched = None
    if spec.stop:
        tokens, matched = apply_stop(tokens, spec.stop)
        finish = "stop" if matched else finish
    return Generation(tokens=tokens, finish=finish, stop_sequence=matched)


def reply_words(model: str, prompt: str, count: int, offset: int = 0) -> list[str]:
    head = ["fake", "reply", "from", f"{model}:"]
    source = _WORD.findall(prompt) or list(FILLER)
    tail = [source[(offset + i) % len(source)] for i in range(max(0, count - len(head)))]
    return (head + tail)[:count]


def apply_stop(tokens: list[str], stop: Sequence[str]) -> tuple[list[str], str | None]:
    """Cut the reply before the earliest stop sequence, as real servers do (it is not sent)."""
    text = "".join(tokens)
    hits = [(i, s) for i, s in ((text.find(s), s) for s in stop if s) if i >= 0]
    if not hits:
        return tokens, None
    cut, matched = min(hits)
    out: list[str] = []
    used = 0
    for token in tokens:
        if used + len(token) > cut:
            if cut > used:
                out.append(token[: cut - used])
            break
        out.append(token)
        used += len(token)
    return out, matched


def json_tokens(words: list[str]) -> list[str]:
    """The reply words as a JSON object `{"reply": "..."}`, one word per token."""
    escaped = [quote(w)[1:-1] for w in words]
    body = [e if i == 0 else " " + e for i, e in enumerate(escaped)]
    return ['{"reply": "', *body, '"}'] if body else ['{"reply": ""}']


def hint_words(prompt: str) -> list[str]:
    return _WORD.findall(prompt) or ["fake"]


def fake_object(
    schema: Mapping[str, Any], words: Sequence[str], root: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An object satisfying a (simple) JSON schema, with strings taken from `words`."""
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return {}
    return {name: fake_value(sub, words, root or schema) for name, sub in props.items()}


def fake_value(  # noqa: C901 - one branch per JSON-schema keyword
    schema: Any, words: Sequence[str], root: Mapping[str, Any] | None = None, depth: int = 0
) -> Any:
    """A value satisfying `schema`: `$ref` into `$defs` (as pydantic writes nested models),
    `anyOf`/`oneOf` (their first branch), `const`, `enum` and the basic types."""
    if not isinstance(schema, Mapping) or depth > 16:
        return words[-1] if words else "fake"
    root = root or schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return fake_value(_resolve(root, ref), words, root, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            usable = [
                b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")
            ]
            return fake_value((usable or branches)[0], words, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    simple = {"integer": 1, "number": 1.5, "boolean": True, "null": None}
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return [fake_value(schema.get("items"), words, root, depth + 1)]
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        return {n: fake_value(sub, words, root, depth + 1) for n, sub in props.items()}
    capitalised = [w for w in words[1:] if w[:1].isupper()]
    return (capitalised or list(words) or ["fake"])[-1]


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    """A local `#/...` reference; anything else resolves to nothing (a string)."""
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ["\0"]:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def tool_specs(tools: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, parameter schema) of each tool, in OpenAI/Ollama or Anthropic shape."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        inner = tool.get("function")
        fn: dict[str, Any] = inner if isinstance(inner, dict) else tool
        name = fn.get("name")
        schema = fn.get("parameters", fn.get("input_schema")) or {}
        if isinstance(name, str):
            out.append((name, schema if isinstance(schema, Mapping) else {}))
    return out


def choose_tool(tools: Any, choice: Any, messages: Any) -> tuple[str, Mapping[str, Any]] | None:
    """The tool to call, if any: forced by `choice`, or the first tool when the user asked
    about the weather (and the conversation is not already answering a tool result)."""
    specs = tool_specs(tools)
    if not specs or choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    wanted = _forced_name(choice)
    if wanted is not None:
        return next((s for s in specs if s[0] == wanted), specs[0])
    if choice in ("required", "any") or (isinstance(choice, dict) and choice.get("type") == "any"):
        return specs[0]
    role, text = last_message(messages)
    if role == "user" and "weather" in text.lower() and not _has_tool_result(messages):
        return specs[0]
    return None


def _forced_name(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        return None
    fn = choice.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return str(fn["name"])
    name = choice.get("name")
    return name if choice.get("type") == "tool" and isinstance(name, str) else None


def _has_tool_result(messages: Any) -> bool:
    items = _dicts(messages)
    last = items[-1] if items else {}
    content = last.get("content")
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "tool_result" for p in content
    )


def token_logprob(token: str, position: int) -> float:
    return -round(0.01 + (zlib.crc32(f"{position}:{token}".encode()) % 200) / 100, 4)


def logprob_entries(tokens: Sequence[str], start: int, top: int) -> list[dict[str, Any]]:
    """OpenAI chat `logprobs.content` entries for `tokens` starting at position `start`."""
    out = []
    for pos, token in enumerate(tokens, start):
        value = token_logprob(token, pos)
        alts = [
            {
                "token": token if k == 0 else f"{token}~{k}",
                "logprob": value - k,
                "bytes": list((token if k == 0 else f"{token}~{k}").encode()),
            }
            for k in range(top)
        ]
        out.append(
            {"token": token, "logprob": value, "bytes": list(token.encode()), "top_logprobs": alts}
        )
    return out
