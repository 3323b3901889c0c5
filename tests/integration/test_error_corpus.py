"""Every refusal of a bad request body, pinned: status and the whole OpenAI error body (type,
code, `param`, message) for a corpus of hostile bodies (truncated, not UTF-8, NaN and Infinity,
numbers that overflow, duplicate keys, other encodings, a BOM, deep nesting, unpaired surrogates,
wrong types in every field, several problems at once, over the caps and the size limit) on the
three OpenAI body endpoints. Request parsing is tuned for speed; this is what may not move."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import config_from, deployment
from triage.api import create_app

# (status, error type, code, param, message)
Answer = tuple[int, str, str, str | None, str]

GOOD = [{"role": "user", "content": "hi"}]


# The start of a body with one user message, for the cases written out byte by byte.
HEAD = b'{"model": "m", "messages": [{"role": "user", "content": '
HI = HEAD + b'"hi"}]'


def chat(**extra: object) -> bytes:
    return json.dumps({"model": "m", "messages": GOOD, **extra}).encode()


CORPUS: dict[str, bytes] = {
    "empty": b"",
    "truncated": b'{"model": "m", "messages": [',
    "garbage": b"\xff\xfe\x00garbage",
    "not_utf8": HEAD + b'"\xff\xfe"}]}',
    "utf8_surrogate_bytes": HEAD + b'"\xed\xa0\x80"}]}',
    "nan": HI + b', "temperature": NaN}',
    "infinity_extra": HI + b', "x": -Infinity}',
    "overflow_extra": HI + b', "x": {"y": [1e400]}}',
    "list_top": b'[{"model": "m"}]',
    "string_top": b'"hello"',
    "number_top": b"42",
    "trailing_data": chat()[:-1] + b"} {}",
    "trailing_vertical_tab": chat() + b"\x0b",
    "trailing_nul": chat() + b"\x00",
    "trailing_space_invalid": b'{"model": 5, "messages": []}  \n\t',
    "leading_space_invalid": b' \n {"model": 5, "messages": []}',
    "bom_utf8": b"\xef\xbb\xbf" + chat(temperature=9),
    "utf16_invalid": json.dumps({"model": "m", "messages": [], "n": 0}).encode("utf-16"),
    "utf16le_nobom_invalid": json.dumps({"model": "m", "messages": []}).encode("utf-16-le"),
    "utf32_invalid": json.dumps({"model": 1, "messages": GOOD}).encode("utf-32"),
    "deep_101": HI + b', "x": ' + b"[" * 100 + b"]" * 100 + b"}",
    "deep_huge": b'{"model": "m", "x": ' + b"[" * 50000 + b"]" * 50000 + b"}",
    "unpaired_surrogate": HEAD + b'"a\\ud800b"}]}',
    "unpaired_low_surrogate": HEAD + b'"\\uDC00"}]}',
    "duplicate_model": HI + b', "model": 7}',
    "duplicate_messages": HI + b', "messages": []}',
    "missing_model": json.dumps({"messages": GOOD}).encode(),
    "missing_messages": json.dumps({"model": "m"}).encode(),
    "empty_object": b"{}",
    "model_type": chat(model=5),
    "model_empty": chat(model=""),
    "model_long": chat(model="m" * 300),
    "messages_string": json.dumps({"model": "m", "messages": "hi"}).encode(),
    "messages_empty": json.dumps({"model": "m", "messages": []}).encode(),
    "role_unknown": json.dumps(
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]}
    ).encode(),
    "role_missing": json.dumps({"model": "m", "messages": [{"content": "x"}]}).encode(),
    "content_number": json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": 5}]}
    ).encode(),
    "content_parts_strings": json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": ["a"]}]}
    ).encode(),
    "message_not_object": json.dumps({"model": "m", "messages": ["hi"]}).encode(),
    "temperature_string": chat(temperature="hot"),
    "temperature_high": chat(temperature=3),
    "top_p_negative": chat(top_p=-0.1),
    "stream_string": chat(stream="yes"),
    "stream_int": chat(stream=1),
    "n_zero": chat(n=0),
    "n_float": chat(n=1.5),
    "stop_five": chat(stop=["a", "b", "c", "d", "e"]),
    "stop_number": chat(stop=5),
    "max_tokens_zero": chat(max_tokens=0),
    "max_tokens_over_cap": chat(max_tokens=10**9),
    "max_completion_tokens_over_cap": chat(max_completion_tokens=10**12),
    "logit_bias_string": chat(logit_bias={"1": "x"}),
    "stream_options_int": chat(stream_options={"include_usage": 1}),
    "stream_options_list": chat(stream_options=[1]),
    "tools_string": chat(tools="x"),
    "tool_choice_number": chat(tool_choice=3),
    "logprobs_string": chat(logprobs="yes"),
    "top_logprobs_high": chat(top_logprobs=21),
    "response_format_list": chat(response_format=[]),
    "many_errors": json.dumps({"model": 1, "messages": [], "temperature": "x", "n": -1}).encode(),
    "too_many_messages": json.dumps({"model": "m", "messages": GOOD * 3000}).encode(),
    "control_char": b'{"model": "m\x01", "messages": []}',
    "over_size": chat(x="y" * (5 << 20)),
}
COMPLETION: dict[str, bytes] = {
    "prompt_missing": json.dumps({"model": "m"}).encode(),
    "prompt_empty_list": json.dumps({"model": "m", "prompt": []}).encode(),
    "prompt_dict": json.dumps({"model": "m", "prompt": {"a": 1}}).encode(),
    "nan": b'{"model": "m", "prompt": "x", "best_of": NaN}',
    "echo_string": json.dumps({"model": "m", "prompt": "x", "echo": "y"}).encode(),
}
EMBEDDING: dict[str, bytes] = {
    "input_empty": json.dumps({"model": "m", "input": ""}).encode(),
    "input_missing": json.dumps({"model": "m"}).encode(),
    "format_wrong": json.dumps({"model": "m", "input": "x", "encoding_format": "hex"}).encode(),
    "dimensions_zero": json.dumps({"model": "m", "input": "x", "dimensions": 0}).encode(),
    "list_top": b"[]",
}

CHAT_EXPECTED: dict[str, Answer] = {
    "bom_utf8": (
        400,
        "invalid_request_error",
        "invalid_request",
        "temperature",
        "temperature: Input should be less than or equal to 2",
    ),
    "content_number": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages.0.content.str",
        "messages.0.content.str: Input should be a valid string (and 1 more problem(s))",
    ),
    "content_parts_strings": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages.0.content.str",
        "messages.0.content.str: Input should be a valid string (and 1 more problem(s))",
    ),
    "control_char": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "deep_101": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is nested more than 100 levels deep",
    ),
    "deep_huge": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is nested more than 100 levels deep",
    ),
    "duplicate_messages": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages",
        "messages: List should have at least 1 item after validation, not 0",
    ),
    "duplicate_model": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: Input should be a valid string",
    ),
    "empty": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "empty_object": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: required field is missing (and 1 more problem(s))",
    ),
    "garbage": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "infinity_extra": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "leading_space_invalid": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: Input should be a valid string (and 1 more problem(s))",
    ),
    "list_top": (
        400,
        "invalid_request_error",
        "invalid_request",
        None,
        "the request body must be a JSON object",
    ),
    "logit_bias_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "logit_bias.1",
        "logit_bias.1: Input should be a valid number, unable to parse string as a number",
    ),
    "logprobs_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "logprobs",
        "logprobs: Input should be a valid boolean",
    ),
    "many_errors": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: Input should be a valid string (and 3 more problem(s))",
    ),
    "max_completion_tokens_over_cap": (
        400,
        "invalid_request_error",
        "invalid_request",
        "max_completion_tokens",
        "max_completion_tokens may be at most 131072",
    ),
    "max_tokens_over_cap": (
        400,
        "invalid_request_error",
        "invalid_request",
        "max_tokens",
        "max_tokens may be at most 131072",
    ),
    "max_tokens_zero": (
        400,
        "invalid_request_error",
        "invalid_request",
        "max_tokens",
        "max_tokens: Input should be greater than or equal to 1",
    ),
    "message_not_object": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages.0",
        "messages.0: Input should be a valid dictionary or instance of Message",
    ),
    "messages_empty": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages",
        "messages: List should have at least 1 item after validation, not 0",
    ),
    "messages_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages",
        "messages: Input should be a valid list",
    ),
    "missing_messages": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages",
        "messages: required field is missing",
    ),
    "missing_model": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: required field is missing",
    ),
    "model_empty": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: String should have at least 1 character",
    ),
    "model_long": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: String should have at most 256 characters",
    ),
    "model_type": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: Input should be a valid string",
    ),
    "n_float": (
        400,
        "invalid_request_error",
        "invalid_request",
        "n",
        "n: Input should be a valid integer, got a number with a fractional part",
    ),
    "n_zero": (
        400,
        "invalid_request_error",
        "invalid_request",
        "n",
        "n: Input should be greater than or equal to 1",
    ),
    "nan": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "not_utf8": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "number_top": (
        400,
        "invalid_request_error",
        "invalid_request",
        None,
        "the request body must be a JSON object",
    ),
    "over_size": (
        413,
        "invalid_request_error",
        "request_too_large",
        None,
        "request body over 4194304 bytes",
    ),
    "overflow_extra": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "response_format_list": (
        400,
        "invalid_request_error",
        "invalid_request",
        "response_format",
        "response_format: Input should be a valid dictionary",
    ),
    "role_missing": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages.0.role",
        "messages.0.role: required field is missing",
    ),
    "role_unknown": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages.0.role",
        "messages.0.role: Input should be 'system', 'developer', 'user', 'assistant', "
        "'tool' or 'function'",
    ),
    "stop_five": (
        400,
        "invalid_request_error",
        "invalid_request",
        "stop",
        "stop: Value error, at most 4 stop sequences",
    ),
    "stop_number": (
        400,
        "invalid_request_error",
        "invalid_request",
        "stop.str",
        "stop.str: Input should be a valid string (and 1 more problem(s))",
    ),
    "stream_int": (
        400,
        "invalid_request_error",
        "invalid_request",
        "stream",
        "stream: Input should be a valid boolean",
    ),
    "stream_options_int": (
        400,
        "invalid_request_error",
        "invalid_request",
        "stream_options.include_usage",
        "stream_options.include_usage: Input should be a valid boolean",
    ),
    "stream_options_list": (
        400,
        "invalid_request_error",
        "invalid_request",
        "stream_options",
        "stream_options: Input should be a valid dictionary or instance of StreamOptions",
    ),
    "stream_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "stream",
        "stream: Input should be a valid boolean",
    ),
    "string_top": (
        400,
        "invalid_request_error",
        "invalid_request",
        None,
        "the request body must be a JSON object",
    ),
    "temperature_high": (
        400,
        "invalid_request_error",
        "invalid_request",
        "temperature",
        "temperature: Input should be less than or equal to 2",
    ),
    "temperature_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "temperature",
        "temperature: Input should be a valid number, unable to parse string as a number",
    ),
    "too_many_messages": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages",
        "at most 1024 messages",
    ),
    "tool_choice_number": (
        400,
        "invalid_request_error",
        "invalid_request",
        "tool_choice.str",
        "tool_choice.str: Input should be a valid string (and 1 more problem(s))",
    ),
    "tools_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "tools",
        "tools: Input should be a valid list",
    ),
    "top_logprobs_high": (
        400,
        "invalid_request_error",
        "invalid_request",
        "top_logprobs",
        "top_logprobs: Input should be less than or equal to 20",
    ),
    "top_p_negative": (
        400,
        "invalid_request_error",
        "invalid_request",
        "top_p",
        "top_p: Input should be greater than or equal to 0",
    ),
    "trailing_nul": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "trailing_vertical_tab": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "trailing_data": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "trailing_space_invalid": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: Input should be a valid string (and 1 more problem(s))",
    ),
    "truncated": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "unpaired_low_surrogate": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body escapes an unpaired UTF-16 surrogate",
    ),
    "unpaired_surrogate": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body escapes an unpaired UTF-16 surrogate",
    ),
    "utf16_invalid": (
        400,
        "invalid_request_error",
        "invalid_request",
        "n",
        "n: Input should be greater than or equal to 1 (and 1 more problem(s))",
    ),
    "utf16le_nobom_invalid": (
        400,
        "invalid_request_error",
        "invalid_request",
        "messages",
        "messages: List should have at least 1 item after validation, not 0",
    ),
    "utf32_invalid": (
        400,
        "invalid_request_error",
        "invalid_request",
        "model",
        "model: Input should be a valid string",
    ),
    "utf8_surrogate_bytes": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
}
COMPLETION_EXPECTED: dict[str, Answer] = {
    "echo_string": (
        400,
        "invalid_request_error",
        "invalid_request",
        "echo",
        "echo: Input should be a valid boolean",
    ),
    "nan": (
        400,
        "invalid_request_error",
        "invalid_json",
        None,
        "the request body is not valid JSON",
    ),
    "prompt_dict": (
        400,
        "invalid_request_error",
        "invalid_request",
        "prompt.str",
        "prompt.str: Input should be a valid string (and 3 more problem(s))",
    ),
    "prompt_empty_list": (
        400,
        "invalid_request_error",
        "invalid_request",
        "prompt",
        "prompt: Value error, prompt must not be an empty list",
    ),
    "prompt_missing": (
        400,
        "invalid_request_error",
        "invalid_request",
        "prompt",
        "prompt: required field is missing",
    ),
}
EMBEDDING_EXPECTED: dict[str, Answer] = {
    "dimensions_zero": (
        400,
        "invalid_request_error",
        "invalid_request",
        "dimensions",
        "dimensions: Input should be greater than or equal to 1",
    ),
    "format_wrong": (
        400,
        "invalid_request_error",
        "invalid_request",
        "encoding_format",
        "encoding_format: Input should be 'float' or 'base64'",
    ),
    "input_empty": (
        400,
        "invalid_request_error",
        "invalid_request",
        "input",
        "input: Value error, input must not be empty",
    ),
    "input_missing": (
        400,
        "invalid_request_error",
        "invalid_request",
        "input",
        "input: required field is missing",
    ),
    "list_top": (
        400,
        "invalid_request_error",
        "invalid_request",
        None,
        "the request body must be a JSON object",
    ),
}

ENDPOINTS = (
    ("/v1/chat/completions", CORPUS, CHAT_EXPECTED),
    ("/v1/completions", COMPLETION, COMPLETION_EXPECTED),
    ("/v1/embeddings", EMBEDDING, EMBEDDING_EXPECTED),
)
CASES = [(path, name) for path, corpus, _ in ENDPOINTS for name in corpus]


@pytest.fixture(scope="module")
def app() -> object:
    # No request in the corpus gets as far as an upstream call (port 9 is never dialled).
    model = deployment("m", "hosted_vllm/x", "http://127.0.0.1:9/v1")
    return create_app(config_from({"model_list": [model]}))


def test_every_case_has_a_pinned_answer() -> None:
    for _, corpus, expected in ENDPOINTS:
        assert set(corpus) == set(expected)


@pytest.mark.parametrize(("path", "name"), CASES)
async def test_a_bad_body_gets_exactly_the_pinned_error(app: object, path: str, name: str) -> None:
    corpus, expected = next((c, e) for p, c, e in ENDPOINTS if p == path)
    status, kind, code, param, message = expected[name]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        response = await client.post(
            path, content=corpus[name], headers={"content-type": "application/json"}
        )
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"message": message, "type": kind, "code": code, "param": param}
    }
