"""What every answer to a hostile request must look like, and the tally of those answers."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

ERROR_KEYS = {"message", "type", "param", "code"}
# What a leaked Python traceback looks like. Specific enough that a client string echoed in an
# error ("The model `Traceback` does not exist": schemathesis generates such ids) is not one.
LEAK = re.compile(
    rb"Traceback \(most recent call last\)|File \"[^\"]*\", line \d+|site-packages/"
    rb"|RecursionError: |UnicodeDecodeError: "
)


# Fields a model does not declare but service.py reads with getattr (extra="allow" makes an
# unknown field an attribute): a string there is a TypeError, `stream` streams an embedding.
UNDECLARED_BUT_READ = {
    "/v1/completions": {"messages", "max_completion_tokens"},
    "/v1/embeddings": {"messages", "max_tokens", "max_completion_tokens", "stream"},
}


def known_bug(path: str, body: Any) -> str | None:
    """The reported bug an input is known to hit, so the fuzz run withholds it (its upstream
    failures would cool the deployment down for every later request) and a strict xfail test
    pins it. Fixed so far: `prompt: []` and unbounded `dimensions` (protocol.py)."""
    del path, body  # none open: undeclared fields are no longer read by service.py
    return None


class Tally:
    """Answers counted by status code, safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: Counter[int] = Counter()
        self._withheld: Counter[str] = Counter()
        self.workload = 0

    def add(self, status: int) -> None:
        with self._lock:
            self._codes[status] += 1

    def withhold(self, bug: str) -> None:
        with self._lock:
            self._withheld[bug] += 1

    def summary(self) -> str:
        with self._lock:
            codes = dict(sorted(self._codes.items()))
            withheld = dict(self._withheld)
        client = {code: n for code, n in codes.items() if 400 <= code < 500}
        ok = sum(n for code, n in codes.items() if code < 400)
        server = sum(n for code, n in codes.items() if code >= 500)
        line = f"fuzz: {sum(codes.values())} requests, 2xx {ok}, 4xx by code {client}, 5xx {server}"
        line += f"; well-formed workload alongside: {self.workload} requests, all 2xx"
        if withheld:
            line += f"; inputs withheld for known bugs: {withheld}"
        return line


def assert_openai_error(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    assert isinstance(document, dict) and set(document) == {"error"}, body[:300]
    error = document["error"]
    assert isinstance(error, dict) and set(error) == ERROR_KEYS, body[:300]
    assert isinstance(error["message"], str) and error["message"], body[:300]
    assert isinstance(error["type"], str), body[:300]
    assert error["param"] is None or isinstance(error["param"], str), body[:300]
    assert error["code"] is None or isinstance(error["code"], str), body[:300]
    return error


def assert_anthropic_error(body: bytes) -> dict[str, Any]:
    """An error on Anthropic's paths (`/v1/messages...`), in Anthropic's shape."""
    document = json.loads(body)
    assert isinstance(document, dict) and document.get("type") == "error", body[:300]
    assert set(document) == {"type", "error", "request_id"}, body[:300]
    error = document["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message"}, body[:300]
    assert isinstance(error["message"], str) and error["message"], body[:300]
    return error


# The events a whole Responses API or Messages API stream ends with (neither sends `[DONE]`).
RESPONSES_END = (
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
    b"event: message_stop",
    b"event: error",
)


def assert_sane(status: int, body: bytes, content_type: str) -> None:
    """No 5xx, no leaked traceback; a 4xx is an OpenAI error; a 2xx is JSON or a whole stream."""
    assert status < 500, f"{status}: {body[:500]!r}"
    assert LEAK.search(body) is None, body[:500]
    if status >= 400:
        assert content_type.startswith("application/json"), content_type
        if body.startswith(b'{"type":"error"'):
            assert_anthropic_error(body)
        else:
            assert_openai_error(body)
    elif content_type.startswith("text/event-stream"):
        last = body.rstrip().rsplit(b"\n\n", 1)[-1]  # the last event
        assert last.endswith(b"data: [DONE]") or last.startswith(RESPONSES_END), body[-300:]
    elif content_type.startswith("application/json"):
        json.loads(body)


def check_answer(tally: Tally, status: int, body: bytes, content_type: str) -> None:
    tally.add(status)
    assert_sane(status, body, content_type)
