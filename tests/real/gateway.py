"""Triage's config in front of the real llama.cpp server, and the requests the suite sends it.

Requests are deterministic (`temperature: 0`) and short: 16 tokens for a reply, 32 for a stream.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any, NamedTuple

import httpx

from tests.helpers import config_from, deployment, free_port
from tests.real.server import LlamaServer
from triage.classify import TASKS
from triage.config import Config

SKIP_REASON = "llama_cpp not installed: run make test-real"
HELLO = [{"role": "user", "content": "Tell me about the river in Oslo."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["unit"],
        },
    },
}
FORCED_TOOL = {"type": "function", "function": {"name": "get_weather"}}


class Gateway(NamedTuple):
    lane: str
    url: str


def llama_cpp_missing() -> bool:
    return importlib.util.find_spec("llama_cpp") is None


def triage_config(llama: LlamaServer) -> Config:
    """Groups `tiny-a`/`tiny-b` (the chat aliases) and `embed`; `dead` has nothing listening
    and falls back to `tiny-a`. `auto` sends code to `tiny-a`, every other task to `tiny-b`."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    return config_from(
        {
            "model_list": [
                deployment("tiny-a", "hosted_vllm/tiny-a", llama.api_base),
                deployment("tiny-b", "hosted_vllm/tiny-b", llama.api_base),
                deployment("embed", "hosted_vllm/tiny-embed", llama.api_base),
                deployment("dead", "hosted_vllm/tiny-a", dead),
            ],
            "router_settings": {
                "num_retries": 0,
                "timeout": 30,
                "fallbacks": [{"dead": ["tiny-a"]}],
            },
            "triage": {
                "ledger": {"enabled": False},
                "default_route": ["tiny-b"],
                "routes": {task: ["tiny-a" if task == "code" else "tiny-b"] for task in TASKS},
                "min_confidence": 0.0,
            },
        }
    )


def chat(url: str, model: str = "tiny-a", **extra: Any) -> httpx.Response:
    """A deterministic chat request; an `extra` value of None drops that field."""
    body = {"model": model, "messages": HELLO, "temperature": 0, "max_tokens": 16, **extra}
    body = {key: value for key, value in body.items() if value is not None}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def stream_chunks(url: str, **extra: Any) -> list[dict[str, Any]]:
    """Every chunk of a deterministic 32-token stream, checked to end with `[DONE]`."""
    body = {"model": "tiny-a", "messages": HELLO, "temperature": 0, "max_tokens": 32}
    body |= {"stream": True, **extra}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200, response.read()
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )
