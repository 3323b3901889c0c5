"""What the hot routes' dispatch costs per request: the app's fast path (api/fastpath.py)
against the full FastAPI/Starlette stack, in one process, on this thread's CPU clock.

    LITELLM_LOCAL_MODEL_COST_MAP=True python bench/fastpath_cpu.py

Each case is a POST to /v1/chat/completions that the app answers without suspending (so the
coroutine is driven without an event loop and nothing but the app's own work is timed): a body
that fails validation (the handler runs, parses and raises; the error handler renders the 400)
and a refused content type (the Gate's 415). The difference between the two apps is the layers
the fast path skips, which every request pays, answered or refused.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import report, time_calls  # noqa: E402

from triage.api.app import create_app  # noqa: E402
from triage.config.loader import build_config  # noqa: E402

N = 20_000
BODY = b'{"model": "local", "messages": "not a list"}'
HEADERS = [
    (b"host", b"127.0.0.1:4000"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.82.0"),
    (b"content-length", str(len(BODY)).encode()),
]
TEXT = [(b"content-type", b"text/plain") if n == b"content-type" else (n, v) for n, v in HEADERS]


def _app(hot: bool) -> Any:
    deployment = {"model_name": "local", "litellm_params": {"model": "hosted_vllm/small"}}
    deployment["litellm_params"]["api_base"] = "http://127.0.0.1:9/v1"
    config = build_config(
        {"model_list": [deployment], "triage": {"ledger": {"enabled": False}}}, {}, source="-"
    )
    app = create_app(config)
    if not hot:
        app.hot_paths = frozenset()  # type: ignore[attr-defined]
    return app


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


def _driver(app: Any, headers: list[tuple[bytes, bytes]], status: int) -> Callable[[], None]:
    sent: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    def call() -> None:
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
        scope |= {"headers": headers, "query_string": b"", "root_path": ""}
        coroutine = app(scope, _receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            if sent.pop() != status:
                raise AssertionError("unexpected status") from None
            return
        raise AssertionError("the benchmark's app must not suspend")

    return call


def main() -> None:
    apps = {"fast path": _app(True), "full stack": _app(False)}
    for _ in range(3):  # alternated: a busy machine drifts
        for name, app in apps.items():
            for case, headers, status in (("400", HEADERS, 400), ("415", TEXT, 415)):
                timings = time_calls(_driver(app, headers, status), N, time.thread_time_ns)
                print(report(f"{name}, {case}", timings))


if __name__ == "__main__":
    main()
