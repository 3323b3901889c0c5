"""Reload (POST /admin/reload and SIGHUP) re-runs the start-up safety checks, applies or refuses
every changed setting (never accepts one and ignores it), and releases the runtime it replaces:
memory stays flat over 300 reloads of a real `triage serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import deployment, free_port, serve
from triage.api import create_app
from triage.config import load_config
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
TEAM, ADMIN = "tk-team-0123456789", "ak-admin-0123456789"
ENV = {"TEAM": TEAM, "ADMIN": ADMIN}
KEY = {"authorization": f"Bearer {TEAM}"}
ADMIN_KEY = {"authorization": f"Bearer {ADMIN}"}
CHAT = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"admin_key": "os.environ/ADMIN", "keys": [{"id": "team", "key": "os.environ/TEAM"}]}


def _data(fake: FakeUpstreamThread, tmp_path: Path, *, keyed: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model_list": [deployment("local", "hosted_vllm/small", fake.url + "/v1")],
        "triage": {"ledger": {"path": str(tmp_path / "usage.db")}},
    }
    if keyed:
        data["auth"] = AUTH
    return data


class Server:
    """The app served on loopback from a config file that the test rewrites."""

    def __init__(self, path: Path, url: str, app: Any) -> None:
        self.path, self.url, self.app = path, url, app

    def write(self, data: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(data))

    def reload(self, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            self.url + "/admin/reload", headers=ADMIN_KEY if headers is None else headers
        )

    def chat(self, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.url + "/v1/chat/completions", json=CHAT, headers=headers or {})


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    servers: list[Any] = []

    def begin(data: dict[str, Any], bind_host: str | None = None) -> Server:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        app = create_app(
            load_config(path, ENV),
            config_source=lambda: load_config(path, ENV),
            bind_host=bind_host,
        )
        context = serve(app)
        servers.append(context)
        return Server(path, context.__enter__(), app)

    yield begin
    for context in servers:
        context.__exit__(None, None, None)


def _refused(response: httpx.Response, *needles: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "reload_refused"
    for needle in needles:
        assert needle in error["message"]


def test_reload_cannot_switch_authentication_off(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    server = start(_data(fake, tmp_path))
    server.write(_data(fake, tmp_path, keyed=False))
    _refused(server.reload(), "auth.keys", "started with client keys")
    assert server.chat().status_code == 401
    assert server.chat(KEY).status_code == 200


def test_a_server_started_keyless_may_add_keys_and_drop_them(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    server = start(_data(fake, tmp_path, keyed=False))
    server.write(_data(fake, tmp_path))
    assert server.reload({}).status_code == 200
    assert server.chat().status_code == 401
    server.write(_data(fake, tmp_path, keyed=False))
    assert server.reload().status_code == 200
    assert server.chat().status_code == 200


def test_no_keyless_reload_on_a_public_bind(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    data = _data(fake, tmp_path, keyed=False)
    data["auth"] = {"allow_public_without_keys": True}
    server = start(data, bind_host="0.0.0.0")
    assert server.reload({}).status_code == 200  # still allowed explicitly
    server.write(_data(fake, tmp_path, keyed=False))
    _refused(server.reload({}), "listens on 0.0.0.0")


def test_a_changed_ledger_path_is_refused_and_the_old_ledger_keeps_recording(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    server = start(_data(fake, tmp_path))
    data = _data(fake, tmp_path)
    data["triage"]["ledger"]["path"] = str(tmp_path / "elsewhere.db")
    server.write(data)
    _refused(server.reload(), "`triage.ledger.path` changed: needs a restart")
    assert server.chat(KEY).status_code == 200
    assert not (tmp_path / "elsewhere.db").exists()
    with Ledger(tmp_path / "usage.db") as ledger:
        assert len(ledger.rows()) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("server", "port"), 4999),
        (("server", "cors_origins"), ["http://app.example"]),
        (("server", "allowed_hosts"), ["*"]),
        (("server", "max_header_bytes"), 4096),
        (("router_settings", "cooldown_time"), 1),
        (("triage", "ledger", "enabled"), False),
    ],
)
def test_settings_fixed_at_start_are_refused_by_name(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path, path: tuple[str, ...], value: Any
) -> None:
    server = start(_data(fake, tmp_path))
    data = _data(fake, tmp_path)
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    server.write(data)
    _refused(server.reload(), f"`{'.'.join(path)}` changed: needs a restart")


def test_settings_read_per_request_are_applied(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    server = start(_data(fake, tmp_path))
    data = _data(fake, tmp_path)
    data["server"] = {"max_body_bytes": 32, "metrics_public": True}
    data["model_list"].append(deployment("extra", "hosted_vllm/small", fake.url + "/v1"))
    server.write(data)
    assert server.reload().status_code == 200
    assert server.chat(KEY).status_code == 413
    metrics = httpx.get(server.url + "/metrics")
    assert metrics.status_code == 200
    info = [line for line in metrics.text.splitlines() if line.startswith("triage_config_info{")]
    assert len(info) == 1 and 'deployments="2"' in info[0]
    models = httpx.get(server.url + "/v1/models", headers=KEY).json()["data"]
    assert "extra" in {m["id"] for m in models}


def test_a_stream_keeps_its_runtime_across_reloads_which_is_closed_after(
    start: Any, fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    fake.configure(completion_tokens=30, tokens_per_second=30)
    server = start(_data(fake, tmp_path))
    retirement = server.app.state.triage.retirement
    chunks: list[str] = []

    def stream() -> None:
        body = {**CHAT, "stream": True}
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=KEY) as r:
            chunks.extend(line for line in r.iter_lines() if line)

    reader = threading.Thread(target=stream)
    reader.start()
    deadline = time.monotonic() + 10
    while not fake.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.reload().status_code == 200
    assert server.reload().status_code == 200
    assert retirement.retired == 2  # the stream still holds the first runtime
    reader.join(timeout=20)
    assert chunks[-1] == "data: [DONE]"
    assert sum('"content"' in c for c in chunks) >= 30
    deadline = time.monotonic() + 5  # the request ends just after its last byte is sent
    while retirement.retired and time.monotonic() < deadline:
        time.sleep(0.01)
    assert retirement.retired == 0
    assert server.chat(KEY).status_code == 200


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_300_reloads_keep_memory_flat_and_sighup_keeps_auth(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    data = _data(fake, tmp_path)
    path.write_text(yaml.safe_dump(data))
    port = free_port()
    env = {**os.environ, **ENV, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [sys.executable, "-m", "triage.cli", "serve", "--config", str(path)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)

            def reloads(count: int) -> None:
                for i in range(count):
                    assert client.post("/admin/reload", headers=ADMIN_KEY).status_code == 200
                    if i % 10 == 0:
                        answer = client.post("/v1/chat/completions", json=CHAT, headers=KEY)
                        assert answer.status_code == 200

            reloads(30)  # warm-up: allocator arenas, lazily imported modules
            before = _rss_kib(process.pid)
            reloads(300)
            growth_mib = (_rss_kib(process.pid) - before) / 1024
            print(f"RSS growth over 300 reloads: {growth_mib:.1f} MiB")
            assert growth_mib < 10

            path.write_text(yaml.safe_dump(_data(fake, tmp_path, keyed=False)))
            process.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)
