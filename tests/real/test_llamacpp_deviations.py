"""Deviations of a real llama.cpp server that Triage must hide from clients.

Each test states the OpenAI behaviour a client relies on. The ones Triage does not handle yet are
strict xfails with the reason: once fixed they pass, strict mode turns that into a failure, and
the marker comes off.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.contract.openapi_spec import validate
from tests.helpers import config_from, deployment, serve
from tests.real.gateway import (
    FORCED_TOOL,
    HELLO,
    SKIP_REASON,
    WEATHER_TOOL,
    Gateway,
    chat,
    llama_cpp_missing,
    stream_chunks,
)
from tests.real.server import LlamaServer
from triage.api import create_app

if llama_cpp_missing():
    pytest.skip(SKIP_REASON, allow_module_level=True)

pytestmark = pytest.mark.real


def xfail_on(request: pytest.FixtureRequest, gateway: Gateway, lane: str, reason: str) -> None:
    if gateway.lane == lane:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def test_stream_ends_with_its_finish_reason(any_lane: Gateway) -> None:
    # litellm appends its own usage chunk (choices=[{delta: {}, finish_reason: null}]); Triage
    # recognises it as the usage chunk, so the stream still ends on its finish reason.
    chunks = stream_chunks(any_lane.url)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_stream_ends_with_usage_when_the_client_asks(any_lane: Gateway) -> None:
    # llama-cpp-python ignores stream_options.include_usage, so on the native lane Triage makes
    # the usage chunk itself; litellm makes one with its own tokenizer. Either way the counts
    # are estimates (llama.cpp's own tokenizer is not available to Triage), so only the shape
    # and non-zero counts are pinned here.
    chunks = stream_chunks(any_lane.url, stream_options={"include_usage": True})
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_streamed_tool_call_adds_up_to_one_call_in_the_openai_sdk(any_lane: Gateway) -> None:
    # llama-cpp-python repeats id, type and function.name in every tool-call delta; Triage
    # keeps them on the first delta only, so the SDK does not concatenate them.
    client = openai.OpenAI(base_url=any_lane.url + "/v1", api_key="unused")
    with client.chat.completions.stream(
        model="tiny-a",
        messages=HELLO,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice=FORCED_TOOL,  # type: ignore[arg-type]
        max_tokens=48,
        temperature=0,
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.id.count("call_") == 1


@pytest.mark.xfail(
    strict=True, reason="llama-cpp-python ignores n and answers one choice; Triage relays it"
)
def test_n_gives_that_many_choices(gateway: str) -> None:
    response = chat(gateway, n=2, max_tokens=4)
    assert [choice["index"] for choice in response.json()["choices"]] == [0, 1]


def test_deployment_naming_a_model_the_server_lacks_is_not_ready(llama: LlamaServer) -> None:
    config = config_from(
        {"model_list": [deployment("typo", "hosted_vllm/tiny-typo", llama.api_base)]}
    )
    # llama-cpp-python answers any unknown model name with its first model (HTTP 200); the
    # readiness probe checks that the model is listed in /v1/models.
    with serve(create_app(config)) as url:
        body = httpx.get(url + "/health/ready", timeout=10).json()
    assert body["deployments"][0]["state"] != "healthy"
