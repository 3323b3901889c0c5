"""Stream chunks relayed byte for byte must be exactly as good as rebuilt ones.

`StreamNormalizer.relay` sends an upstream chunk's own bytes when `passable` says it is
already in shape. Hypothesis draws chunks near
that boundary (right and wrong types, extra keys, tool calls, usage, odd finish reasons) and
checks every chunk that went out raw: one line, valid against the OpenAI spec, and the same as
the rebuilt chunk apart from the optional fields the spec allows (`system_fingerprint`, a null
`logprobs`, a null `usage` when the client asked) and vLLM's null `stop_reason`, cut out.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract.openapi_spec import validate
from tests.helpers import config_from, deployment
from triage.engine.base import Batch
from triage.errors import UpstreamError
from triage.normalize import StreamNormalizer, normalize_chunk
from triage.rawchunk import passable, text_chars
from triage.relay import Tally, convert

DEPLOYMENT = config_from(
    {"model_list": [deployment("g", "hosted_vllm/m", "http://127.0.0.1:9/v1")]}
).model_list[0]

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
    optional={"logprobs": st.none(), "stop_reason": st.none()},  # stop_reason: vLLM's
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
# The common shape: one text delta, no finish, in OpenAI's member order.
common_chunks = st.builds(
    lambda fp, role, text, stop, usage: {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "m",
        **({"system_fingerprint": fp} if fp else {}),
        "choices": [
            {
                "index": 0,
                "delta": {**role, "content": text},
                "logprobs": None,
                "finish_reason": None,
                **stop,
            }
        ],
        **usage,
    },
    st.one_of(st.none(), st.just("fp_1")),
    st.sampled_from([{}, {"role": "assistant"}]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(['"', "\\", ""]),
    st.sampled_from([{}, {"stop_reason": None}]),
    st.sampled_from([{}, {"usage": None}]),
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


ORDER = {
    k: i
    for i, k in enumerate(
        ["id", "object", "created", "model", "system_fingerprint", "choices", "usage"]
        + ["index", "delta", "logprobs", "finish_reason", "stop_reason", "role", "content"]
    )
}


def _openai_order(value: Any) -> Any:
    """Members in the order OpenAI and vLLM write them."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: ORDER.get(k, len(ORDER)))
        return {k: _openai_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [_openai_order(v) for v in value]
    return value


encodings = st.sampled_from(
    [
        lambda c: json.dumps(_openai_order(c), separators=(",", ":")).encode(),
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
    out = {k: v for k, v in chunk.items() if k != "system_fingerprint"}
    if out.get("usage", 0) is None:
        del out["usage"]
    out["choices"] = [
        {k: v for k, v in c.items() if k != "logprobs" or v is not None} for c in out["choices"]
    ]
    return out


@settings(max_examples=400, deadline=None)
@given(
    chunk=chunks() | common_chunks,
    encode=encodings,
    keep_usage=st.booleans(),
    earlier=st.booleans(),
)
def test_a_chunk_relayed_raw_equals_its_rebuilt_form(
    chunk: dict[str, Any], encode: Any, keep_usage: bool, earlier: bool
) -> None:
    raw = encode(chunk)
    fast, slow = (StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage) for _ in range(2))
    if earlier:  # a chunk already went out: empty ones are dropped from here on
        first = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        fast({**first, "choices": []})
        slow({**first, "choices": []})
    sent, chars = fast.relay(chunk, raw)
    rebuilt = slow(chunk)
    assert chars == text_chars(chunk) or b"\\" in raw  # escapes are counted as written
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
    sent, chars = StreamNormalizer(DEPLOYMENT, keep_usage=False).relay(text, raw)
    assert (sent, chars) == (raw.replace(b',"usage":null', b""), 2)
    vllm = {**text, "choices": [{**text["choices"][0], "stop_reason": None}]}
    vllm.pop("system_fingerprint")
    vllm.pop("usage")
    raw = json.dumps(vllm, separators=(",", ":")).encode()
    sent, _ = StreamNormalizer(DEPLOYMENT, keep_usage=False).relay(vllm, raw)
    assert sent == raw.replace(b',"stop_reason":null', b"")
    tool = {**text, "choices": [{"index": 0, "delta": {"tool_calls": []}, "finish_reason": None}]}
    assert not passable(tool)


@settings(max_examples=200, deadline=None)
@given(
    base=common_chunks,
    texts=st.lists(
        st.text(max_size=6) | st.sampled_from(['"', "\\", "a\nb", "é", ""]), min_size=1, max_size=8
    ),
    ascii_only=st.booleans(),
    keep_usage=st.booleans(),
)
def test_chunks_relayed_by_shape_alone_match_the_full_relay(
    base: dict[str, Any], texts: list[str], ascii_only: bool, keep_usage: bool
) -> None:
    """`relay_like_last` skips decoding a chunk that differs from the last raw one only in its
    text: what it sends, and the text it counts, must be what the full relay would give."""
    by_shape, full = (StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage) for _ in range(2))
    for text in texts:
        chunk = json.loads(json.dumps(base))
        chunk["choices"][0]["delta"] = {"content": text}
        raw = json.dumps(_openai_order(chunk), separators=(",", ":"), ensure_ascii=ascii_only)
        data = raw.encode()
        shortcut = by_shape.relay_like_last(data)
        sent = shortcut if shortcut is not None else by_shape.relay(chunk, data)
        assert sent == full.relay(chunk, data)


def _decode(data: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(data))
    except ValueError:
        raise UpstreamError("a malformed stream chunk") from None


def _batch_of(raw: list[bytes]) -> Batch:
    return Batch([None] * len(raw), raw, decode=_decode)


def _one_by_one(normalizer: StreamNormalizer, raw: list[bytes]) -> tuple[list[Any], int]:
    """What the relay sends for `raw` chunk by chunk, with no run: the full relay for each."""
    sent, chars = [], 0
    for data in raw:
        out, count = normalizer.relay(json.loads(data), data)
        chars += count
        if out is not None:
            sent.append(out)
    return sent, chars


SPOILS = {
    "finish": (b'"finish_reason":null', b'"finish_reason":"stop"'),
    # The same bytes around its text, but another choice's.
    "choice": (b'"index":0', b'"index":1'),
    # UTF-8's first byte of two ends one text, its second starts the next: valid only when
    # read as one.
    "lead": (b'"},"logprobs"', b'\xc3"},"logprobs"'),
    "trail": (b'"content":"', b'"content":"\xa9'),
}


def _spoil(raw: bytes, what: str) -> bytes:
    if what == "cut":
        return raw[:-1]  # not JSON any more: the relay stops at it
    return raw.replace(*SPOILS[what], 1)


@settings(max_examples=300, deadline=None)
@given(
    base=common_chunks,
    texts=st.lists(
        st.text(max_size=5)
        | st.sampled_from(['"', "\\", "a\nb", "é", "", "\x00", "\u2028", "日本"])
        | st.binary(max_size=3).map(lambda b: b.decode("latin-1")),
        min_size=1,
        max_size=70,
    ),
    odd=st.lists(st.tuples(st.integers(0, 69), st.sampled_from(["cut", *SPOILS]))),
    ascii_only=st.booleans(),
    keep_usage=st.booleans(),
)
def test_a_read_of_many_chunks_relays_as_each_chunk_alone_would(
    base: dict[str, Any],
    texts: list[str],
    odd: list[tuple[int, str]],
    ascii_only: bool,
    keep_usage: bool,
) -> None:
    """Several chunks from one read go by the last raw chunk's shape in one pass (a run:
    rawchunk.TextShape.run); whatever mix of plain texts, escapes, control bytes, other chunks
    and broken UTF-8 the read holds, what goes out and the text counted must be what the full
    relay of each chunk by itself gives, in order."""
    raw = []
    for text in texts:
        chunk = json.loads(json.dumps(base))
        chunk["choices"][0]["delta"] = {"content": text}
        raw.append(
            json.dumps(
                _openai_order(chunk), separators=(",", ":"), ensure_ascii=ascii_only
            ).encode()
        )
    for at, what in odd:
        if at < len(raw):
            raw[at] = _spoil(raw[at], what)
    good = []
    for data in raw:
        try:
            json.loads(data)
        except ValueError:
            break
        good.append(data)
    expected = _one_by_one(StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage), good)
    tally = Tally()
    out, failure = convert(
        StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage), _batch_of(raw), tally
    )
    assert (list(out), tally.produced) == expected
    assert (failure is None) == (len(good) == len(raw))


def test_a_read_of_two_choices_keeps_each_chunk_its_own_index() -> None:
    """With `n: 2` the text deltas of two choices interleave: the same bytes around each text
    but for the index. A run by the first one's shape must not take the other's chunks."""
    head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    raw = [
        (
            head + f'"choices":[{{"index":{i % 2},"delta":{{"content":"w{i}"}},'
            '"logprobs":null,"finish_reason":null}],"usage":null}'
        ).encode()
        for i in range(8)
    ]
    for keep_usage in (False, True):
        expected = _one_by_one(StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage), raw)
        tally = Tally()
        normalizer = StreamNormalizer(DEPLOYMENT, keep_usage=keep_usage)
        out, failure = convert(normalizer, _batch_of(raw), tally)
        assert failure is None
        assert (list(out), tally.produced) == expected
        assert [json.loads(item)["choices"][0]["index"] for item in out] == [0, 1] * 4
