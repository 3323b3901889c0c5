"""Hostile bodies over real HTTP to the served app: wrong types in every field, garbage bytes,
invalid UTF-8, truncated and mangled JSON, NaN and Infinity, duplicate keys, control characters,
enormous numbers, deep nesting, bodies at and over the size cap, too many messages, `max_tokens`
over the cap and wrong content types. Each answer is a 4xx in OpenAI shape or a valid 2xx, while
a well-formed workload runs alongside on another thread and never fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.sanity import Tally, assert_openai_error, check_answer, known_bug
from tests.fuzz.strategies import (
    MESSAGES,
    PATHS,
    VALID,
    duplicate_keys,
    mangled,
    nested,
    raw_json,
    with_literal,
    wrong_types,
)
from tests.fuzz.workload import Workload
from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.api.deps import MAX_JSON_DEPTH
from triage.config.schema import ServerSettings
from triage.fakeupstream import FakeUpstreamThread

LIMITS = ServerSettings()  # the fuzzed app runs on the defaults
CHAT = "/v1/chat/completions"
JSON_TYPE = "application/json"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def workload(fuzz_gateway: str, tally: Tally) -> Iterator[Workload]:
    with Workload(fuzz_gateway) as running:
        yield running
    tally.workload += running.ok


@pytest.fixture(scope="module")
def client(fuzz_gateway: str, workload: Workload) -> Iterator[httpx.Client]:
    """The hostile client; asking for `workload` starts the well-formed one first."""
    with httpx.Client(base_url=fuzz_gateway, timeout=30) as hostile:
        yield hostile


def send(
    client: httpx.Client,
    tally: Tally,
    path: str,
    body: bytes,
    content_type: str = JSON_TYPE,
) -> httpx.Response | None:
    """POST `body` and check the answer; None (nothing sent) if it would hit a known bug."""
    bug = known_bug(path, raw_json(body))
    if bug is not None:
        tally.withhold(bug)
        return None
    response = client.post(path, content=body, headers={"content-type": content_type})
    answer = (response.status_code, response.content, response.headers.get("content-type", ""))
    check_answer(tally, *answer)
    return response


def post(
    client: httpx.Client,
    tally: Tally,
    path: str,
    body: bytes,
    content_type: str = JSON_TYPE,
) -> httpx.Response:
    """`send`, for bodies that hit no known bug."""
    response = send(client, tally, path, body, content_type)
    assert response is not None
    return response


def _chat(**fields: Any) -> bytes:
    return json.dumps({"model": "local", "messages": MESSAGES, **fields}).encode()


def _padded(size: int, model: str = "local") -> bytes:
    """A chat body of exactly `size` bytes, most of them one message."""
    head = b'{"model":"' + model.encode() + b'","messages":[{"role":"user","content":"'
    tail = b'"}]}'
    room = size - len(head) - len(tail)
    return head + b"a " * (room // 2) + b"a" * (room % 2) + tail


def _nest(depth: int) -> bytes:
    """A chat body whose deepest container is `depth` levels down, counting the body itself."""
    return _chat(x="@").replace(b'"@"', b"[" * (depth - 1) + b"]" * (depth - 1))


def _messages(count: int) -> bytes:
    return _chat(messages=[{"role": "user", "content": f"message {i}"} for i in range(count)])


# name: (path, body, expected status)
CASES: dict[str, tuple[str, bytes, int]] = {
    "body exactly at the size cap": (CHAT, _padded(LIMITS.max_body_bytes), 200),
    "body one byte over the size cap": (CHAT, _padded(LIMITS.max_body_bytes + 1), 413),
    "3 MB through the classifier": (CHAT, _padded(3 * 1024 * 1024, "auto"), 200),
    "1 MB model name": (
        CHAT,
        json.dumps({"model": "m" * 2**20, "messages": MESSAGES}).encode(),
        400,
    ),
    "100k nested lists": (CHAT, b"[" * 100_000 + b"]" * 100_000, 400),
    "100k nested objects": (CHAT, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400),
    "nesting at the depth cap": (CHAT, _nest(MAX_JSON_DEPTH), 200),
    "nesting one past the depth cap": (CHAT, _nest(MAX_JSON_DEPTH + 1), 400),
    "max_messages messages": (CHAT, _messages(LIMITS.max_messages), 200),
    "max_messages + 1 messages": (CHAT, _messages(LIMITS.max_messages + 1), 400),
    "5000 messages": (CHAT, _messages(5000), 400),
    "max_tokens at the cap": (CHAT, _chat(max_tokens=LIMITS.max_tokens), 200),
    "max_tokens over the cap": (CHAT, _chat(max_tokens=LIMITS.max_tokens + 1), 400),
    "max_completion_tokens over the cap": (
        CHAT,
        _chat(max_completion_tokens=LIMITS.max_tokens + 1),
        400,
    ),
    "empty body": (CHAT, b"", 400),
    "JSON array": (CHAT, b"[]", 400),
    "JSON null": (CHAT, b"null", 400),
    "empty messages": (CHAT, _chat(messages=[]), 400),
    "five stop sequences": (CHAT, _chat(stop=["a", "b", "c", "d", "e"]), 400),
    "invalid UTF-8 in a string": (CHAT, _chat(user="@").replace(b"@", b"\xff\xfe"), 400),
    "UTF-8-encoded surrogate": (CHAT, _chat(user="@").replace(b"@", b"\xed\xa0\x80"), 400),
    "unpaired surrogate escape": (CHAT, _chat(user="@").replace(b"@", b"\\ud800"), 400),
    "paired surrogate escape": (CHAT, _chat(user="@").replace(b"@", b"\\ud83d\\ude00"), 200),
    "raw control character in a string": (CHAT, _chat(user="@").replace(b"@", b"\x01"), 400),
    "NaN temperature": (CHAT, _chat(temperature="@").replace(b'"@"', b"NaN"), 400),
    "Infinity in logit_bias": (
        CHAT,
        _chat(logit_bias={"1": "@"}).replace(b'"@"', b"Infinity"),
        400,
    ),
    "1e999 in logit_bias": (CHAT, _chat(logit_bias={"1": "@"}).replace(b'"@"', b"1e999"), 400),
    "5000-digit seed": (CHAT, _chat(seed="@").replace(b'"@"', b"9" * 5000), 400),
    "duplicate model key, the last valid": (CHAT, b'{"model":1,' + _chat()[1:], 200),
    "duplicate model key, the last invalid": (CHAT, _chat()[:-1] + b',"model":1}', 400),
    "UTF-8 byte order mark": (CHAT, b"\xef\xbb\xbf" + _chat(), 200),
    "UTF-16 body": (CHAT, _chat().decode().encode("utf-16"), 200),
    # Token ids cannot be read by the sensitive scan: pinned local, and no local deployment
    # serves `emb` here.
    "100k embedding inputs": (
        "/v1/embeddings",
        json.dumps({"model": "emb", "input": list(range(100_000))}).encode(),
        403,
    ),
    "100k embedding strings": (
        "/v1/embeddings",
        json.dumps({"model": "emb", "input": ["x"] * 100_000}).encode(),
        200,
    ),
}


@pytest.mark.parametrize(("path", "body", "status"), CASES.values(), ids=list(CASES))
def test_hostile_body_gets_the_expected_answer(
    client: httpx.Client, tally: Tally, path: str, body: bytes, status: int
) -> None:
    response = post(client, tally, path, body)
    assert response.status_code == status, response.text[:300]


def test_chunked_body_over_the_cap_is_a_413(client: httpx.Client, tally: Tally) -> None:
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"model":"local","messages":' + json.dumps(MESSAGES).encode()
        for _ in range(LIMITS.max_body_bytes // len(chunk) + 1):
            yield chunk
        yield b"}"

    response = client.post(CHAT, content=chunks(), headers={"content-type": JSON_TYPE})
    tally.add(response.status_code)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert assert_openai_error(response.content)["code"] == "request_too_large"


@pytest.mark.parametrize(
    "content_type",
    ["", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_wrong_content_type_is_read_as_json_or_refused(
    client: httpx.Client, tally: Tally, content_type: str
) -> None:
    # A type that is not JSON is refused whatever the body (api/gate.py); an empty one is read.
    expected = (200, 400) if content_type == "" else (415, 415)
    assert post(client, tally, CHAT, _chat(), content_type).status_code == expected[0]
    assert post(client, tally, CHAT, b"model=local&x=1", content_type).status_code == expected[1]


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(data=st.data())
def test_any_json_in_any_field_gets_a_4xx_or_a_valid_2xx(
    client: httpx.Client, tally: Tally, path: str, data: st.DataObject
) -> None:
    send(client, tally, path, json.dumps(data.draw(wrong_types(path))).encode())


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(data=st.data())
def test_non_json_literals_and_bad_unicode_in_fields_never_get_a_server_error(
    client: httpx.Client, tally: Tally, path: str, data: st.DataObject
) -> None:
    send(client, tally, path, data.draw(with_literal(path)))


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(data=st.data())
def test_truncated_or_spliced_json_never_gets_a_server_error(
    client: httpx.Client, tally: Tally, path: str, data: st.DataObject
) -> None:
    send(client, tally, path, data.draw(mangled(path)))


@pytest.mark.parametrize("path", PATHS)
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_duplicate_keys_never_get_a_server_error(
    client: httpx.Client, tally: Tally, path: str, data: st.DataObject
) -> None:
    send(client, tally, path, data.draw(duplicate_keys(path)))


@pytest.mark.parametrize("path", PATHS)
@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_nesting_past_the_depth_cap_is_a_400(
    client: httpx.Client, tally: Tally, path: str, data: st.DataObject
) -> None:
    body, depth = data.draw(nested(path, max_depth=3 * MAX_JSON_DEPTH))
    response = post(client, tally, path, body)
    if depth > MAX_JSON_DEPTH:
        assert response.status_code == 400
        assert "nested" in assert_openai_error(response.content)["message"]


@settings(FUZZ, max_examples=300)
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=2048))
def test_garbage_bytes_are_a_400(
    client: httpx.Client, tally: Tally, path: str, body: bytes
) -> None:
    response = send(client, tally, path, body)
    assert response is None or response.status_code == 400


@pytest.mark.parametrize("stream", [False, True])
def test_an_empty_prompt_list_is_a_400(fake: FakeUpstreamThread, stream: bool) -> None:
    """On an app of its own: the upstream failure would cool down the shared one."""
    model_list = [deployment("local", "hosted_vllm/fake-model", fake.url + "/v1")]
    with serve(create_app(config_from({"model_list": model_list}))) as url:
        body = {"model": "local", "prompt": [], "stream": stream}
        response = httpx.post(url + "/v1/completions", json=body, timeout=30)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/completions", {"messages": True}),
        ("/v1/completions", {"max_completion_tokens": "many"}),
        ("/v1/embeddings", {"max_tokens": "5"}),
        ("/v1/embeddings", {"stream": True}),
    ],
)
def test_a_field_another_endpoint_declares_is_ignored(
    fake: FakeUpstreamThread, path: str, extra: dict[str, Any]
) -> None:
    """On an app of its own: an upstream failure would cool down the shared one."""
    base = fake.url + "/v1"
    model_list = [
        deployment("local", "hosted_vllm/fake-model", base),
        deployment("emb", "hosted_vllm/fake-embedding", base),
    ]
    with serve(create_app(config_from({"model_list": model_list}))) as url:
        response = httpx.post(url + path, json={**VALID[path], **extra}, timeout=30)
    assert response.status_code == 200, response.text


def test_the_well_formed_workload_never_failed_meanwhile(workload: Workload) -> None:
    """Runs last in this module: every valid request sent alongside the hostile ones succeeded."""
    workload.stop()
    assert workload.failures == []
    assert workload.ok > 0
