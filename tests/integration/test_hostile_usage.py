"""An upstream whose `usage` is nonsense (negative counts, booleans, strings) is not believed:
the request is answered and metered on Triage's own estimate, its cost is never negative, and no
token or cost counter goes down. Before, a negative count reached `Counter.inc` (a 500 after the
upstream had answered) or would have lowered the counters."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import config_from, deployment, serve
from triage.api import create_app

MSG = [{"role": "user", "content": "Summarize: the cat sat on the mat all day long."}]
PRICES = {"input_cost_per_token": "0.001", "output_cost_per_token": "0.002"}


def _answer(usage: Any) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }
    return json.dumps(body).encode()


def _stream(usage: Any) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    delta = {"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}
    end = {"index": 0, "delta": {}, "finish_reason": "stop"}
    chunks = [{**base, "choices": [delta]}, {**base, "choices": [end]}]
    chunks.append({**base, "choices": [], "usage": usage})
    events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


class _Upstream:
    """A loopback OpenAI-compatible upstream that answers every chat call, plain or streamed,
    with `usage`."""

    def __init__(self, usage: Any) -> None:
        plain, stream = _answer(usage), _stream(usage)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                streamed = bool(body.get("stream"))
                payload = stream if streamed else plain
                self.send_response(200)
                kind = "text/event-stream" if streamed else "application/json"
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Upstream:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _samples(text: str, name: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


BAD_USAGE = [
    {"prompt_tokens": -1000, "completion_tokens": -50, "total_tokens": -1050},
    {"prompt_tokens": 12, "completion_tokens": -50, "total_tokens": -38},
    {"prompt_tokens": True, "completion_tokens": True, "total_tokens": 2},
    {"prompt_tokens": "12", "completion_tokens": "3"},
]


@pytest.mark.parametrize("usage", BAD_USAGE, ids=["negative", "negative-out", "bool", "strings"])
def test_nonsense_usage_is_estimated_and_never_lowers_a_counter(usage: dict[str, Any]) -> None:
    with _Upstream(usage) as upstream:
        model = deployment("m", "openai/fake", upstream.url, params={"api_key": "x", **PRICES})
        app = create_app(config_from({"model_list": [model]}))
        with serve(app) as url, httpx.Client(timeout=20) as client:
            answers = [
                client.post(url + "/v1/chat/completions", json={"model": "m", "messages": MSG})
                for _ in range(2)
            ]
            streamed = {"model": "m", "messages": MSG, "stream": True}
            streamed["stream_options"] = {"include_usage": True}
            stream = client.post(url + "/v1/chat/completions", json=streamed)
            metrics = client.get(url + "/metrics").text
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert float(answer.headers["x-triage-cost-usd"]) > 0  # estimated tokens, priced
    assert stream.status_code == 200
    assert stream.text.rstrip().endswith("data: [DONE]"), stream.text  # ended, not cut by an error
    assert '"error"' not in stream.text
    tokens = _samples(metrics, "triage_tokens_total")
    assert tokens and all(value > 0 for value in tokens)  # in and out, each an estimate
    costs = _samples(metrics, "triage_cost_usd_total")
    assert costs and all(value > 0 for value in costs)
