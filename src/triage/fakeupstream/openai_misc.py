"""The rest of the OpenAI surface: legacy `/v1/completions` (plain and SSE), `/v1/embeddings`
and `/v1/models`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from triage.fakeupstream.embeddings import embed, inputs_of, to_base64
from triage.fakeupstream.error_bodies import BadRequest, int_field, stop_list
from triage.fakeupstream.generation import (
    Generation,
    Spec,
    count_words,
    generate,
    token_logprob,
)
from triage.fakeupstream.openai_chat import DONE, SSE, error_frame, usage_in_stream, usage_of
from triage.fakeupstream.streaming import Call, Frame, pause_before_answer, send_stream


def _prompts(value: Any) -> list[str]:
    try:
        return inputs_of(value if value is not None else "")
    except ValueError:
        raise BadRequest("'prompt' must be a string or an array of strings") from None


def _generations(call: Call, prompts: list[str]) -> list[Generation]:
    body = call.body
    n = int_field(body, "n", 1, minimum=1) or 1
    cap = int_field(body, "max_tokens", 16)  # the legacy endpoint's default
    stop = stop_list(body.get("stop"))
    seed = body.get("seed")
    base = seed if isinstance(seed, int) else 0
    length = call.settings.completion_tokens
    return [
        generate(Spec(call.model, p, length, cap=cap, stop=stop, offset=i + base))
        for p in prompts
        for i in range(n)
    ]


async def completions(call: Call) -> web.StreamResponse:
    prompts = _prompts(call.body.get("prompt"))
    gens = _generations(call, prompts)
    usage = usage_of(max(1, count_words(prompts)), gens)
    logprobs = int_field(call.body, "logprobs", None)
    if call.stream:
        return await _stream(call, gens, usage)
    await pause_before_answer(call, max(g.completion_tokens for g in gens))
    choices = [
        {
            "text": g.text,
            "index": i,
            "finish_reason": g.finish,
            "logprobs": None if logprobs is None else _legacy_logprobs(g, logprobs),
        }
        for i, g in enumerate(gens)
    ]
    return web.json_response(
        {
            "id": f"cmpl-fake{call.number}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": choices,
            "usage": usage,
        }
    )


def _legacy_logprobs(gen: Generation, top: int) -> dict[str, Any]:
    values = [token_logprob(t, i) for i, t in enumerate(gen.tokens)]
    offsets = [sum(len(t) for t in gen.tokens[:i]) for i in range(len(gen.tokens))]
    return {
        "tokens": gen.tokens,
        "token_logprobs": values,
        "top_logprobs": [{t: v} for t, v in zip(gen.tokens, values, strict=True)] if top else None,
        "text_offset": offsets,
    }


class _Frames:
    """Encodes `text_completion` SSE frames around a pre-serialised common head."""

    def __init__(self, call: Call) -> None:
        head = {
            "id": f"cmpl-fake{call.number}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": call.model,
        }
        self._head = json.dumps(head, separators=(",", ":"))[:-1]

    def __call__(self, choices: list[dict[str, Any]], extra: str = "") -> bytes:
        return f'data: {self._head},"choices":{json.dumps(choices)}{extra}}}\n\n'.encode()


async def _stream(call: Call, gens: list[Generation], usage: dict[str, int]) -> web.StreamResponse:
    frame = _Frames(call)
    size = call.settings.chunk_tokens
    frames: list[Frame] = []
    for index, gen in enumerate(gens):
        for at in range(0, len(gen.tokens), size):
            group = gen.tokens[at : at + size]
            choice = {"text": "".join(group), "index": index, "logprobs": None}
            frames.append((frame([{**choice, "finish_reason": None}]), len(group)))
    send_usage = usage_in_stream(call)

    def finish() -> bytes:
        last = [
            {"text": "", "index": i, "logprobs": None, "finish_reason": g.finish}
            for i, g in enumerate(gens)
        ]
        tail = [frame(last)]
        if send_usage:
            tail.append(frame([], f',"usage":{json.dumps(usage)}'))
        return b"".join([*tail, DONE])

    return await send_stream(call, frames, finish, error_frame, SSE)


async def embeddings(call: Call) -> web.StreamResponse:
    body = call.body
    try:
        texts = inputs_of(body.get("input"))
    except ValueError:
        raise BadRequest("'input' must be a string or an array of strings") from None
    dims = int_field(body, "dimensions", call.settings.embedding_dimensions, minimum=1)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embed(text, dims or 8)
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": to_base64(vector) if as_base64 else vector,
            }
        )
    tokens = max(1, count_words(texts))
    await pause_before_answer(call, 0)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def model_response(model: str) -> web.Response:
    return web.json_response(
        {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "triage-fake"}
    )


def models_response(models: Sequence[str]) -> web.Response:
    created = 1_700_000_000
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "triage-fake"}
                for m in models
            ],
        }
    )
