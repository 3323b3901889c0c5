"""The test seam itself: respx sees litellm's traffic when the litellm lane runs on httpx.

litellm sends async HTTP through aiohttp by default, which respx cannot see; the lane's
`http_client="httpx"` switch is what makes upstream requests observable at the HTTP boundary.
"""

from __future__ import annotations

import json

import httpx
import respx

from tests.helpers import config_from, deployment
from triage.api import create_app
from triage.engine.lanes import Lanes

OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi there"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


async def test_respx_sees_the_request_litellm_sends_upstream() -> None:
    config = config_from(
        {"model_list": [deployment("cloud", "openai/gpt-4o-mini", params={"api_key": "sk-test"})]}
    )
    lanes = Lanes(config, http_client="httpx", force="litellm")
    app = create_app(config, lanes=lanes)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://api.openai.com/v1/chat/completions").mock(
            return_value=httpx.Response(200, json=OPENAI_REPLY)
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as client:
            response = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "cloud",
                    "messages": [{"role": "user", "content": "hello"}],
                    "api_base": "http://evil.example",
                    "mock_response": "pwned",
                    "max_completion_tokens": 9,
                },
            )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "hi there"
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    assert "mock_response" not in sent and "api_base" not in sent
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"
    assert response.headers["x-triage-route"] == "cloud"
    assert response.headers["x-triage-deployment"] == "cloud-1"
