"""A flood of huge bodies for the sensitive scan does not stall everyone else.

`triage serve` runs as its own process (so the test's threads do not share its GIL), in front of
a fake upstream that is also its own process. A well-formed workload (small chat requests, one at
a time) is timed quiet, then again while two clients send bodies just under the 4 MiB body limit
over and over: upper-case text (the scanner's worst case) and digit-heavy text. The loaded median
must stay within twice the quiet median plus 20 ms; both figures are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import free_port

BODY_LIMIT = 4 * 1024 * 1024
SAMPLES = 60


@contextmanager
def _process(args: list[str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"{args[0]} exited"
            try:
                httpx.get(ready_url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"{args[0]} did not start"
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    fake_port, port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    config = {
        "model_list": [
            {
                "model_name": "cloud",
                "litellm_params": {"model": "hosted_vllm/m", "api_base": fake_url + "/v1"},
            }
        ],
        "triage": {"default_route": ["cloud"], "ledger": {"enabled": False}},
        "server": {"log_level": "warning"},
    }
    path: Path = tmp_path_factory.mktemp("flood") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    fake_args = ["triage.fakeupstream", "--port", str(fake_port), "--no-record"]
    serve_args = ["triage.cli", "serve", "--config", str(path), "--port", str(port)]
    with _process(fake_args, fake_url + "/v1/models"):
        url = f"http://127.0.0.1:{port}"
        with _process(serve_args, url + "/health"):
            yield url


def _flood_body(text: str) -> bytes:
    envelope = {"model": "cloud", "max_tokens": 1, "messages": [{"role": "user", "content": ""}]}
    room = BODY_LIMIT - len(json.dumps(envelope)) - 64
    envelope["messages"][0]["content"] = (text * (room // len(text) + 1))[:room]
    return json.dumps(envelope).encode()


def _median_latency(url: str) -> float:
    body = {"model": "cloud", "messages": [{"role": "user", "content": "Say hi to Ann."}]}
    times: list[float] = []
    with httpx.Client(timeout=30) as client:
        for _ in range(SAMPLES):
            started = time.perf_counter()
            response = client.post(url + "/v1/chat/completions", json=body)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return statistics.median(times)


def _flood(url: str, body: bytes, stop: threading.Event, sent: list[int]) -> None:
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            response = client.post(url + "/v1/chat/completions", content=body, headers=headers)
            assert response.status_code == 200, response.text[:200]
            sent.append(1)


@pytest.mark.parametrize(
    "text", ["THE QUICK BROWN FOX JUMPS ", "4111 2222 3333 444 55 6-7-8 "], ids=["upper", "digits"]
)
def test_a_flood_of_huge_bodies_keeps_others_latency(gateway: str, text: str) -> None:
    _median_latency(gateway)  # warm up
    quiet = _median_latency(gateway)
    body, stop, sent = _flood_body(text), threading.Event(), []
    flooders = [
        threading.Thread(target=_flood, args=(gateway, body, stop, sent), daemon=True)
        for _ in range(2)
    ]
    for flooder in flooders:
        flooder.start()
    deadline = time.monotonic() + 30
    while not sent and time.monotonic() < deadline:  # the flood is in full swing
        time.sleep(0.05)
    try:
        loaded = _median_latency(gateway)
    finally:
        stop.set()
        for flooder in flooders:
            flooder.join(timeout=60)
    print(
        f"\n{text.split()[0]} flood: quiet median {quiet * 1e3:.1f} ms, "
        f"loaded median {loaded * 1e3:.1f} ms, {len(sent)} huge bodies served"
    )
    assert sent, "the flood never got through"
    assert loaded <= 2 * quiet + 0.020
