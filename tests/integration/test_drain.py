"""SIGTERM drains a real `triage serve`: readiness turns 503, streams that can finish before the
deadline finish, the others end with a well-formed error event and `[DONE]` (none is cut
silently), every one of them is in the ledger, and the process exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import deployment, free_port
from triage.fakeupstream import FakeSettings, FakeUpstreamThread
from triage.ledger import Ledger

pytestmark = pytest.mark.scale
DRAIN_TIMEOUT = 8.0
DRAIN_DELAY = 4.0


def _config(tmp: Path, quick: str, slow: str) -> Path:
    data = {
        "model_list": [
            deployment("quick", "hosted_vllm/m", quick + "/v1"),
            deployment("slow", "hosted_vllm/m", slow + "/v1"),
        ],
        "triage": {
            "default_route": ["quick"],
            "ledger": {"path": str(tmp / "usage.db")},
            "stream_idle_timeout": 120,
        },
        "server": {
            "log_level": "warning",
            "drain_timeout": DRAIN_TIMEOUT,
            "drain_delay": DRAIN_DELAY,
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _stream(url: str, model: str, rid: str, started: threading.Event, out: dict[str, Any]) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    chunks: list[bytes] = []
    try:
        with (
            httpx.Client(timeout=60) as client,
            client.stream(
                "POST", url + "/v1/chat/completions", json=body, headers={"x-request-id": rid}
            ) as r,
        ):
            for chunk in r.iter_bytes():
                chunks.append(chunk)
                started.set()
        out[rid] = (r.status_code, b"".join(chunks), None)
    except httpx.HTTPError as exc:  # a stream cut without its end
        out[rid] = (None, b"".join(chunks), repr(exc))
    finally:
        started.set()


def _events(text: bytes) -> list[str]:
    return [line[len(b"data: ") :].decode() for line in text.split(b"\n\n") if line]


def test_sigterm_during_20_streams_ends_each_one_well_formed(tmp_path: Path) -> None:
    quick_settings = FakeSettings(completion_tokens=30, tokens_per_second=10)  # ~3 s
    slow_settings = FakeSettings(completion_tokens=3000, tokens_per_second=10)  # ~300 s
    with FakeUpstreamThread(quick_settings) as quick, FakeUpstreamThread(slow_settings) as slow:
        config = _config(tmp_path, quick.url, slow.url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "triage.cli", "serve", "--config", str(config)]
            + ["--port", str(port)],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_up(url, proc)
            out: dict[str, Any] = {}
            started = [threading.Event() for _ in range(20)]
            threads = [
                threading.Thread(
                    target=_stream,
                    args=(url, "quick" if i % 2 else "slow", f"s{i}", started[i], out),
                )
                for i in range(20)
            ]
            for t in threads:
                t.start()
            for event in started:
                assert event.wait(60), "a stream did not start"
            proc.send_signal(signal.SIGTERM)
            assert httpx.get(url + "/health/ready", timeout=30).status_code == 503
            for t in threads:
                t.join(timeout=DRAIN_TIMEOUT + 60)
            assert proc.wait(timeout=DRAIN_TIMEOUT + 60) is not None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
    assert len(out) == 20
    for rid, (status, text, failure) in out.items():
        assert failure is None, f"{rid} was cut: {failure}"
        assert status == 200
        assert text.endswith(b"data: [DONE]\n\n"), f"{rid} ended without [DONE]"
        events = _events(text)
        errors = [json.loads(e) for e in events[:-1] if '"error"' in e]
        if int(rid[1:]) % 2:  # quick: finished inside the deadline
            assert errors == [], f"{rid}: {errors}"
        else:
            assert len(errors) == 1 and errors[0]["error"]["code"] == "shutting_down", rid
    with Ledger(tmp_path / "usage.db") as ledger:
        rows = {r.request_id: r for r in ledger.rows()}
    assert sorted(rows) == sorted(out)
    assert all(rows[f"s{i}"].error == "" for i in range(1, 20, 2))
    assert all(rows[f"s{i}"].error != "" for i in range(0, 20, 2))


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "triage serve did not start"
        time.sleep(0.05)
