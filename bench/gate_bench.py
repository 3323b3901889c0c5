"""What api/gate.py (Host, Origin, content type, runtime pin) costs per request.

    python bench/gate_bench.py

Times the gate around an ASGI app that returns at once, against that app alone, for the header
list the openai SDK sends and for a refused request. The coroutines never suspend, so they are
driven without an event loop: the figures are the gate's own work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import report, time_calls  # noqa: E402

from triage.api.gate import Gate, allowed_hosts  # noqa: E402
from triage.api.reloading import Retirement  # noqa: E402

N = 200_000
SDK_HEADERS = [
    (b"host", b"127.0.0.1:4000"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"OpenAI/Python 1.82.0"),
    (b"x-stainless-lang", b"python"),
    (b"x-stainless-package-version", b"1.82.0"),
    (b"x-stainless-os", b"Linux"),
    (b"x-stainless-arch", b"x64"),
    (b"x-stainless-runtime", b"CPython"),
    (b"x-stainless-runtime-version", b"3.11.9"),
    (b"authorization", b"Bearer tk-0123456789"),
    (b"x-stainless-async", b"false"),
    (b"x-stainless-retry-count", b"0"),
    (b"content-length", b"74"),
]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _send(message: Any) -> None:
    return None


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}


def _driver(app: Any, scope: dict[str, Any]) -> Callable[[], None]:
    def call() -> None:
        coroutine = app(scope, None, _send)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        raise AssertionError("the benchmark's app must not suspend")

    return call


def main() -> None:
    hosts = allowed_hosts(None, bind_host="127.0.0.1", keyed=True)
    gate = Gate(_app, pins=Retirement(), hosts=hosts, cors_origins=["http://app.example"])
    foreign = [(b"host", b"evil.example")] + SDK_HEADERS[1:]
    cases = {
        "app alone": _driver(_app, _scope(SDK_HEADERS)),
        "gate, SDK request": _driver(gate, _scope(SDK_HEADERS)),
        "gate, foreign Host": _driver(gate, _scope(foreign)),
    }
    for name, call in cases.items():
        print(report(name, time_calls(call, N)))


if __name__ == "__main__":
    main()
