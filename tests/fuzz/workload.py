"""A well-formed workload on a background thread: plain and streamed chat requests, each of which
must succeed while hostile bodies are being sent to the same server."""

from __future__ import annotations

import itertools
import json
import threading

import httpx

TIMEOUT_S = 15.0
# A steady background load, not a saturating one: the hostile requests need the CPU too.
PAUSE_S = 0.02
PROMPTS = ("Write a Python function that reverses a string.", "Hi! How was your weekend?")


def _problem_plain(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"plain chat: {response.status_code} {response.text[:300]}"
    if not response.json()["choices"][0]["message"]["content"]:
        return "plain chat: empty content"
    return None


def _problem_stream(response: httpx.Response) -> str | None:
    text = response.text
    if response.status_code != 200:
        return f"streamed chat: {response.status_code} {text[:300]}"
    frames = [f[len("data: ") :] for f in text.split("\n\n") if f.startswith("data: ")]
    if not frames or frames[-1] != "[DONE]":
        return f"streamed chat: no [DONE] at the end: {text[-300:]}"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    if any("error" in chunk for chunk in chunks):
        return f"streamed chat: error event: {text[:300]}"
    if not any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks):
        return "streamed chat: no content"
    return None


class Workload:
    """Sends valid chat requests (alternately plain and streamed, to a concrete model group and
    through the classifier) until stopped; keeps every failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Workload:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * TIMEOUT_S)
        assert not self._thread.is_alive(), "the workload thread hangs"

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=TIMEOUT_S) as client:
            for i in itertools.count():
                self._one(client, i)
                if self._stop.wait(PAUSE_S):
                    return

    def _one(self, client: httpx.Client, i: int) -> None:
        stream = i % 2 == 1
        body = {
            "model": ("local", "auto")[i // 2 % 2],
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            "stream": stream,
        }
        try:
            response = client.post("/v1/chat/completions", json=body)
            problem = (_problem_stream if stream else _problem_plain)(response)
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            problem = f"{'streamed' if stream else 'plain'} chat: {exc!r}"
        if problem is None:
            self.ok += 1
        else:
            self.failures.append(problem)
