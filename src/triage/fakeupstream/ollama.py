"""Ollama's native API as real Ollama serves it: `/api/chat` and `/api/generate` (NDJSON stream
by default, nanosecond timings), `/api/embed`, `/api/embeddings`, `/api/tags`, `/api/show`,
`/api/ps` and `/api/version`. Field names follow Ollama's OpenAPI spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from triage.fakeupstream.embeddings import embed, inputs_of
from triage.fakeupstream.error_bodies import BadRequest, int_field, stop_list
from triage.fakeupstream.generation import (
    Generation,
    Spec,
    choose_tool,
    content_text,
    count_words,
    generate,
    last_user_text,
    prompt_tokens,
    quote,
)
from triage.fakeupstream.streaming import Call, Frame, pause_before_answer, send_stream

NDJSON = "application/x-ndjson"
VERSION = "0.12.6"
_COMPACT = (",", ":")


def created_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=_COMPACT).encode() + b"\n"


def _spec(call: Call, prompt: str, tool: Any = None) -> Spec:
    body = call.body
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    assert isinstance(options, dict)
    cap = options.get("num_predict")
    # num_predict -1 means "no limit" and -2 "fill the context" in Ollama.
    cap = int_field(options, "num_predict", None, minimum=-2) if cap is not None else None
    fmt = body.get("format")
    seed = options.get("seed")
    return Spec(
        model=call.model,
        prompt=prompt,
        length=call.settings.completion_tokens,
        cap=cap if cap is not None and cap >= 0 else None,
        stop=stop_list(options.get("stop")),
        json_mode=fmt == "json" or isinstance(fmt, dict),
        schema=fmt if isinstance(fmt, dict) else None,
        offset=seed if isinstance(seed, int) else 0,
        tool=tool,
    )


def _stats(call: Call, gen: Generation, prompt_count: int) -> dict[str, Any]:
    total, load, prompt, evaluation = call.durations_ns()
    return {
        "done": True,
        "done_reason": "length" if gen.finish == "length" else "stop",
        "total_duration": total,
        "load_duration": load,
        "prompt_eval_count": prompt_count,
        "prompt_eval_duration": prompt,
        "eval_count": gen.completion_tokens,
        "eval_duration": evaluation,
    }


def _load_response(call: Call, extra: dict[str, Any]) -> web.Response:
    """What Ollama answers to an empty prompt: it just loads the model."""
    return web.json_response(
        {
            "model": call.model,
            "created_at": created_at(),
            **extra,
            "done": True,
            "done_reason": "load",
        }
    )


def _error_line(message: str) -> bytes:
    return _line({"error": message})


async def chat(call: Call) -> web.StreamResponse:
    messages = call.body.get("messages")
    if messages is None or messages == []:
        return _load_response(call, {"message": {"role": "assistant", "content": ""}})
    if not isinstance(messages, list):
        raise BadRequest("messages must be an array")
    tool = choose_tool(call.body.get("tools"), None, messages)
    gen = generate(_spec(call, last_user_text(messages), tool))
    return await _answer(call, gen, prompt_tokens(messages), "message")


async def _answer(call: Call, gen: Generation, count: int, key: str) -> web.StreamResponse:
    """The reply under `key`: "message" (an object, for /api/chat) or "response" (a string,
    for /api/generate), as one JSON object or as NDJSON lines ending with the stats line."""
    if not call.stream:
        await pause_before_answer(call, gen.completion_tokens)
        return web.json_response(
            {
                "model": call.model,
                "created_at": created_at(),
                key: _payload(key, gen, gen.text),
                **_stats(call, gen, count),
            }
        )
    stamp = created_at()
    head = json.dumps({"model": call.model, "created_at": stamp}, separators=_COMPACT)[:-1]
    frames: list[Frame] = []
    if gen.tool is not None:
        body = {"model": call.model, "created_at": stamp, key: _payload(key, gen, "")}
        frames.append((_line({**body, "done": False}), gen.completion_tokens))
    opening, closing = ('{"role":"assistant","content":', "}") if key == "message" else ("", "")
    for text, tokens in _groups(gen, call.settings.chunk_tokens):
        payload = f"{opening}{quote(text)}{closing}"
        frames.append((f'{head},"{key}":{payload},"done":false}}\n'.encode(), tokens))

    def finish() -> bytes:
        last = {"model": call.model, "created_at": created_at(), key: _payload(key, None, "")}
        return _line({**last, **_stats(call, gen, count)})

    return await send_stream(call, frames, finish, _error_line, NDJSON)


def _payload(key: str, gen: Generation | None, content: str) -> Any:
    if key == "response":
        return content
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if gen is not None and gen.tool is not None:
        # Unlike OpenAI, Ollama sends arguments as an object, not a JSON string.
        message["tool_calls"] = [
            {"function": {"name": gen.tool.name, "arguments": gen.tool.arguments}}
        ]
    return message


def _groups(gen: Generation, size: int) -> list[tuple[str, int]]:
    return [
        ("".join(gen.tokens[at : at + size]), len(gen.tokens[at : at + size]))
        for at in range(0, len(gen.tokens), size)
    ]


async def generate_text(call: Call) -> web.StreamResponse:
    body = call.body
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    if not prompt:
        return _load_response(call, {"response": ""})
    system = body.get("system") if isinstance(body.get("system"), str) else ""
    gen = generate(_spec(call, prompt))
    count = max(1, count_words([prompt, system or ""]))
    return await _answer(call, gen, count, "response")


async def embed_texts(call: Call) -> web.StreamResponse:
    body = call.body
    try:
        texts = inputs_of(body.get("input"))
    except ValueError:
        raise BadRequest("input must be a string or an array of strings") from None
    dims = int_field(body, "dimensions", call.settings.embedding_dimensions, minimum=1) or 8
    await pause_before_answer(call, 0)
    total, load, _, _ = call.durations_ns()
    return web.json_response(
        {
            "model": call.model,
            "embeddings": [embed(t, dims) for t in texts],
            "total_duration": total,
            "load_duration": load,
            "prompt_eval_count": max(1, count_words(texts)),
        }
    )


async def legacy_embeddings(call: Call) -> web.StreamResponse:
    """The deprecated `/api/embeddings` ({"prompt"} -> {"embedding"}) some clients still use."""
    prompt = call.body.get("prompt")
    text = prompt if isinstance(prompt, str) else content_text(prompt)
    await pause_before_answer(call, 0)
    return web.json_response({"embedding": embed(text, call.settings.embedding_dimensions)})


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "fake",
        "families": ["fake"],
        "parameter_size": "1B",
        "quantization_level": "Q4_K_M",
    }


def tags_response(models: Sequence[str]) -> web.Response:
    entries = [
        {
            "name": m,
            "model": m,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 1_000_000_000,
            "digest": hashlib.sha256(m.encode()).hexdigest(),
            "details": _details(),
        }
        for m in models
    ]
    return web.json_response({"models": entries})


def show_response(model: str) -> web.Response:
    return web.json_response(
        {
            "modelfile": f"FROM {model}",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": _details(),
            "model_info": {"general.architecture": "fake", "fake.context_length": 8192},
            "capabilities": ["completion", "tools", "embedding"],
        }
    )


def version_response() -> web.Response:
    return web.json_response({"version": VERSION})


def ps_response() -> web.Response:
    return web.json_response({"models": []})
