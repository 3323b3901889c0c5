"""OpenTelemetry traces, exported for real: the app sends OTLP/HTTP protobuf to a receiver of
this test's own on loopback, which decodes what arrives. Checked: one span per request with the
GenAI attributes and Triage's own, a child span per upstream attempt, the W3C traceparent the
upstream received, no prompt text unless the key opted in, and nothing imported without an
endpoint.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread

PROMPT = "Summarise the quarterly numbers for Zanzibar Holdings."
KEYS = {"quiet": "tk-quiet-0123456789", "open": "tk-open-01234567890"}
ENV = {"QUIET": KEYS["quiet"], "OPEN": KEYS["open"]}


class Receiver:
    """An OTLP/HTTP traces endpoint: decodes every export into spans (attributes flattened)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.paths.append(self.path)
                receiver.add(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "service": service.get("service.name"),
                            "status": span.status.code,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                        }
                    )


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _config(fake: FakeUpstreamThread, endpoint: str | None, **lane: Any) -> Any:
    telemetry = {"otlp_endpoint": endpoint, "service_name": "triage-test"} if endpoint else {}
    return config_from(
        {
            "model_list": [
                deployment(
                    "cloud", "openai/gpt-4o", fake.url + "/v1", params={"api_key": "sk-x"}, **lane
                ),
            ],
            "auth": {
                "keys": [
                    {"id": "quiet", "key": "os.environ/QUIET"},
                    {"id": "open", "key": "os.environ/OPEN", "log_content": True},
                ]
            },
            "telemetry": telemetry,
        },
        ENV,
    )


def _chat(url: str, key: str, **extra: Any) -> httpx.Response:
    body = {"model": "cloud", "messages": [{"role": "user", "content": PROMPT}], **extra}
    headers = {"authorization": f"Bearer {KEYS[key]}"}
    response = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    return response


def _requests(receiver: Receiver) -> list[dict[str, Any]]:
    return [s for s in receiver.spans if s["name"].startswith("chat ")]


def test_each_request_is_a_span_with_a_child_per_attempt_and_the_upstream_joins_the_trace(
    fake: FakeUpstreamThread, receiver: Receiver
) -> None:
    fake.configure(completion_tokens=7)
    fake.add_fault(kind="status", status=503)  # the first attempt fails: two attempts
    with serve(create_app(_config(fake, receiver.url))) as url:
        _chat(url, "quiet")
    # Leaving `serve` shut the app down, which flushed the exporter.
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    [request] = _requests(receiver)
    attrs = request["attributes"]
    assert request["service"] == "triage-test"
    assert request["name"] == "chat cloud"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "cloud"
    assert attrs["gen_ai.response.model"] == "openai/gpt-4o"
    assert attrs["gen_ai.usage.output_tokens"] == 7 and attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["triage.route"] == "cloud" and attrs["triage.deployment"] == "cloud-1"
    assert attrs["triage.attempts"] == 2 and attrs["triage.task"] == "none"
    assert "triage.cost_usd" in attrs and attrs["http.response.status_code"] == 200
    attempts = [s for s in receiver.spans if s["parent"] == request["span_id"]]
    assert len(attempts) == 2
    assert all(s["trace_id"] == request["trace_id"] for s in attempts)
    assert sorted(s["status"] for s in attempts) == [0, 2]  # unset, error
    sent = sorted(r.headers["traceparent"] for r in fake.requests())
    assert sent == sorted(_traceparent(request, s) for s in attempts)


def _traceparent(request: dict[str, Any], parent: dict[str, Any]) -> str:
    """W3C trace context: version 00, the trace, the attempt's span, flags sampled (+ random)."""
    return f"00-{request['trace_id']}-{parent['span_id']}-03"


def test_prompt_text_reaches_spans_only_for_keys_that_opted_in(
    fake: FakeUpstreamThread, receiver: Receiver
) -> None:
    with serve(create_app(_config(fake, receiver.url))) as url:
        _chat(url, "quiet")
        _chat(url, "open")
    quiet = [s for s in receiver.spans if "Zanzibar" not in repr(s)]
    opened = [s for s in receiver.spans if "Zanzibar" in repr(s)]
    assert len(opened) == 1 and opened[0]["attributes"]["gen_ai.prompt"] == PROMPT
    assert len(quiet) == len(receiver.spans) - 1 >= 3  # the quiet request and both attempts


def test_a_stream_is_one_span_ended_when_the_stream_ends(
    fake: FakeUpstreamThread, receiver: Receiver
) -> None:
    fake.configure(completion_tokens=5)
    with serve(create_app(_config(fake, receiver.url))) as url:
        response = _chat(url, "quiet", stream=True)
    assert response.text.rstrip().endswith("data: [DONE]")
    [request] = _requests(receiver)
    assert request["attributes"]["triage.stream"] is True
    assert request["attributes"]["gen_ai.usage.output_tokens"] == 5
    [sent] = [r.headers.get("traceparent") for r in fake.requests()]
    assert sent.startswith(f"00-{request['trace_id']}-")


def test_the_litellm_lane_propagates_the_trace_too(
    fake: FakeUpstreamThread, receiver: Receiver
) -> None:
    with serve(create_app(_config(fake, receiver.url, lane="litellm"))) as url:
        _chat(url, "quiet")
    [request] = _requests(receiver)
    [child] = [s for s in receiver.spans if s["parent"] == request["span_id"]]
    [sent] = [r.headers.get("traceparent") for r in fake.requests()]
    assert sent == _traceparent(request, child)


def test_without_an_endpoint_nothing_is_traced_or_imported(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    with serve(create_app(_config(fake, None))) as url:
        _chat(url, "quiet")
    assert all("traceparent" not in r.headers for r in fake.requests())
    script = (
        "import sys\n"
        "from tests.helpers import config_from, deployment\n"
        "from triage.api import create_app\n"
        "create_app(config_from({'model_list': [deployment('g', 'openai/gpt-4o')]}))\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'triage.telemetry.otel'))]\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
