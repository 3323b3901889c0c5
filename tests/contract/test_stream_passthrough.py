"""Stream chunks relayed byte for byte must be exactly as good as rebuilt ones.

`StreamNormalizer.relay` sends an upstream chunk's own bytes when `passable` says the chunk is
already in shape. Hypothesis draws chunks near that boundary (right and wrong types, extra keys,
tool calls, usage, odd finish reasons) and checks every chunk that went out raw: one line, valid
against the OpenAI spec, and the same as the rebuilt chunk apart from the optional fields the
spec allows (`system_fingerprint`, a null `logprobs`, a null `usage` when the client asked).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract.openapi_spec import validate
from tests.helpers import config_from, deployment
from triage.normalize import StreamNormalizer, normalize_chunk, passable

DEPLOYMENT = config_from(
    {"model_list": [deployment("g", "hosted_vllm/m", "http://127.0.0.1:9/v1")]}
).model_list[0]
OPTIONAL = ("system_fingerprint", "usage")

texts = st.text(max_size=12)
odd = st.one_of(
    st.none(),
    st.integers(-2, 3),
    texts,
    st.booleans(),
    st.just([]),
    st.just({}),
    st.just(float("nan")),
)
good_choices = st.fixed_dictionaries(
    {
        "index": st.integers(0, 3),
        "delta": st.fixed_dictionaries(
            {}, optional={"role": st.just("assistant"), "content": st.one_of(texts, st.none())}
        ),
        "finish_reason": st.sampled_from([None, "stop", "length", "tool_calls"]),
    },
    optional={"logprobs": st.none()},
)
good_chunks = st.fixed_dictionaries(
    {
        "id": st.just("chatcmpl-1"),
        "object": st.just("chat.completion.chunk"),
        "created": st.just(1_700_000_000),
        "model": st.just("m"),
        "choices": st.lists(good_choices, min_size=1, max_size=2),
    },
    optional={"system_fingerprint": st.one_of(st.just("fp"), st.none()), "usage": st.none()},
)
EXTRA = {
    "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    "service_tier": "default",
    "stop_reason": None,
    "tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{"}}],
    "refusal": "no",
    "logprobs": {"content": []},
    "role": "user",
    "finish_reason": "eos",
    "object": "text_completion",
}


@st.composite
def chunks(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed OpenAI chunk, half the time with one thing wrong or unusual in it."""
    chunk = draw(good_chunks)
    if draw(st.booleans()):
        return chunk
    choice = chunk["choices"][0]
    target = draw(st.sampled_from([chunk, choice, choice["delta"]]))
    key = draw(st.sampled_from(sorted({*target, *EXTRA})))
    action = draw(st.sampled_from(["drop", "odd", "extra"]))
    if action == "drop":
        target.pop(key, None)
    elif action == "odd":
        target[key] = draw(odd)
    else:
        target[key] = EXTRA.get(key, "x")
    return chunk


encodings = st.sampled_from(
    [
        lambda c: json.dumps(c, separators=(",", ":")).encode(),  # compact, like vLLM
        lambda c: json.dumps(c).encode(),  # ", " and ": ", like Python servers
        lambda c: json.dumps(c, indent=1).encode(),  # several lines: must never go raw
    ]
)


def _made_up_aside(out: dict[str, Any] | None, chunk: dict[str, Any]) -> Any:
    """`out` without the id and time the rebuild makes up when the chunk has none."""
    if out is None:
        return None
    made_up = {"id"} if not chunk.get("id") else set()
    if not isinstance(chunk.get("created"), int | float):
        made_up.add("created")
    return {k: v for k, v in out.items() if k not in made_up}


def _comparable(chunk: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in chunk.items() if k not in OPTIONAL or v not in (None, "fp")}
    out["choices"] = [
        {k: v for k, v in c.items() if k != "logprobs" or v is not None} for c in out["choices"]
    ]
    return out


@settings(max_examples=400, deadline=None)
@given(chunk=chunks(), encode=encodings, keep_usage=st.booleans(), earlier=st.booleans())
def test_a_chunk_relayed_raw_equals_its_rebuilt_form(
    chunk: dict[str, Any], encode: Any, keep_usage: bool, earlier: bool
) -> None:
    raw = encode(chunk)
    fast, slow = (StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage) for _ in range(2))
    if earlier:  # a chunk already went out: empty ones are dropped from here on
        first = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        fast({**first, "choices": []})
        slow({**first, "choices": []})
    sent = fast.relay(chunk, raw)
    rebuilt = slow(chunk)
    if not isinstance(sent, bytes):
        # Not raw: exactly the rebuild (or dropped like it), made-up id and time aside.
        assert _made_up_aside(sent, chunk) == _made_up_aside(rebuilt, chunk)
        return
    assert rebuilt is not None, "a chunk the rebuild drops went out raw"
    assert b"\n" not in sent and b"\r" not in sent
    relayed = json.loads(sent)
    validate(relayed, "CreateChatCompletionStreamResponse")
    assert _comparable(relayed) == _comparable(normalize_chunk(chunk, DEPLOYMENT, keep_usage=True))
    assert ("usage" in relayed) == (keep_usage and "usage" in chunk)


def test_openai_style_text_deltas_go_raw_and_tool_calls_do_not() -> None:
    text = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}
        ],
        "usage": None,
    }
    assert passable(text)
    raw = json.dumps(text, separators=(",", ":")).encode()
    sent = StreamNormalizer(DEPLOYMENT, keep_usage=False).relay(text, raw)
    assert sent == raw.replace(b',"usage":null', b"")
    tool = {**text, "choices": [{"index": 0, "delta": {"tool_calls": []}, "finish_reason": None}]}
    assert not passable(tool)
