"""`triage serve` as a real process: the ledger survives kill -9, and start-up plus the first
litellm call fetch nothing from the network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import free_port
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

BLOCKER = """
import os, socket
_LOG = os.environ["TRIAGE_TEST_NET_LOG"]
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo
LOCAL = ("127.", "::1", "localhost")

def _note(what):
    with open(_LOG, "a") as handle:
        handle.write(what + "\\n")

def _host(address):
    return str(address[0]) if isinstance(address, tuple) else str(address)

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _host(address).startswith(LOCAL):
        _note("connect " + _host(address))
        raise OSError("network blocked by test")
    return _real_connect(self, address)

def getaddrinfo(host, *args, **kwargs):
    if host is not None and not str(host).startswith(LOCAL):
        _note("resolve " + str(host))
        raise socket.gaierror("network blocked by test")
    return _real_getaddrinfo(host, *args, **kwargs)

socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
"""


def _write_config(tmp: Path, fake_url: str, ledger: Path) -> Path:
    config = {
        "model_list": [
            {
                "model_name": "native",
                "litellm_params": {"model": "hosted_vllm/m", "api_base": fake_url + "/v1"},
            },
            {
                "model_name": "ollama",
                "litellm_params": {"model": "ollama_chat/llama3.2", "api_base": fake_url},
            },
        ],
        "triage": {"default_route": ["native"], "ledger": {"path": str(ledger)}},
        "server": {"log_level": "warning"},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def _serve(
    config: Path, env: dict[str, str] | None = None, *extra: str
) -> Iterator[tuple[str, Any]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "triage.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            *extra,
        ],
        env=env or dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "triage serve did not start"
            time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)


def _chat(client: httpx.Client, url: str, model: str, rid: str) -> httpx.Response:
    return client.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-request-id": rid},
    )


def _streamed(client: httpx.Client, url: str, model: str, rid: str) -> bool:
    """Whether a streamed request was acknowledged: it ended with `[DONE]` and no error."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"x-request-id": rid}
    with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
        text = b"".join(r.iter_bytes())
    return r.status_code == 200 and text.endswith(b"data: [DONE]\n\n") and b'"error"' not in text


def test_ledger_keeps_every_acknowledged_request_after_kill_9(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    ledger = tmp_path / "usage.db"
    acknowledged: list[str] = []
    stop = threading.Event()

    def traffic(url: str) -> None:
        with httpx.Client(timeout=5) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    # Streams too: their row must be committed before the `[DONE]` goes out.
                    rid = f"r-{i}"
                    if i % 2:
                        ok = _streamed(client, url, "native", rid)
                    else:
                        ok = _chat(client, url, "native", rid).status_code == 200
                    if ok:
                        acknowledged.append(rid)
                except httpx.HTTPError:
                    return

    with _serve(_write_config(tmp_path, fake.url, ledger)) as (url, proc):
        worker = threading.Thread(target=traffic, args=(url,))
        worker.start()
        while len(acknowledged) < 40:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        worker.join(timeout=10)
    with Ledger(ledger) as reopened:
        stored = {row.request_id for row in reopened.rows()}
    assert len(acknowledged) >= 40
    assert set(acknowledged) <= stored


def test_nothing_is_fetched_from_the_network(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "net.log"
    log.write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]),
        "TRIAGE_TEST_NET_LOG": str(log),
    }
    # Triage itself must keep litellm offline, not the test's environment.
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
    config = _write_config(tmp_path, fake.url, tmp_path / "usage.db")
    with _serve(config, env) as (url, _), httpx.Client(timeout=30) as client:
        routed = _chat(client, url, "auto", "a")  # classifier + native lane
        translated = _chat(client, url, "ollama", "b")  # imports litellm on first use
    assert routed.status_code == 200 and translated.status_code == 200, translated.text
    assert [r.path for r in fake.requests()] == ["/v1/chat/completions", "/api/chat"]
    assert log.read_text() == ""


def test_metrics_add_up_across_workers(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    config = _write_config(tmp_path, fake.url, tmp_path / "usage.db")
    with _serve(config, None, "--workers", "2") as (url, _), httpx.Client(timeout=10) as client:
        for i in range(30):
            assert _chat(client, url, "native", f"w-{i}").status_code == 200
        text = client.get(url + "/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("triage_requests_total{")
    )
    assert total == 30
    with Ledger(tmp_path / "usage.db") as ledger:
        assert len(ledger.rows()) == 30
