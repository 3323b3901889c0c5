"""Access control end to end: keys, permissions, limits, budgets, admin, reload, binding, and a
planted secret that must never surface."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.config import load_config
from triage.fakeupstream import FakeUpstreamThread

ROOT = Path(__file__).resolve().parents[2]
TEAM_KEY = "tk-team-0123456789"
ADMIN_KEY = "ak-admin-0123456789"
UPSTREAM_SECRET = "sk-PLANTED-upstream-secret-42"
ENV = {"TEAM_KEY": TEAM_KEY, "ADMIN_KEY": ADMIN_KEY, "UP_KEY": UPSTREAM_SECRET}
MSG = [{"role": "user", "content": "hello"}]


def _data(fake: FakeUpstreamThread, **key: Any) -> dict[str, Any]:
    base = fake.url + "/v1"
    return {
        "model_list": [
            deployment("local", "hosted_vllm/small", base, local=True),
            deployment("cloud", "openai/gpt-4o", base, params={"api_key": "os.environ/UP_KEY"}),
        ],
        "auth": {
            "admin_key": "os.environ/ADMIN_KEY",
            "keys": [
                {"id": "team", "key": "os.environ/TEAM_KEY", **key},
                {"id": "hashed", "key_sha256": hashlib.sha256(b"hashed-key").hexdigest()},
            ],
        },
    }


def _app(fake: FakeUpstreamThread, **key: Any) -> Any:
    return create_app(config_from(_data(fake, **key), ENV))


@pytest.fixture
def gateway(fake: FakeUpstreamThread) -> Iterator[str]:
    with serve(_app(fake, models=["local", "auto"], tasks=["chat", "open_qa"])) as url:
        yield url


def _client(url: str, key: str = TEAM_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def _chat(client: openai.OpenAI, model: str = "local") -> Any:
    return client.chat.completions.create(model=model, messages=MSG)  # type: ignore[arg-type]


def test_missing_or_wrong_key_is_401(gateway: str) -> None:
    response = httpx.post(
        gateway + "/v1/chat/completions", json={"model": "local", "messages": MSG}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        _chat(_client(gateway, "tk-wrong"))


def test_valid_keys_by_env_reference_and_by_digest(gateway: str, fake: FakeUpstreamThread) -> None:
    assert _chat(_client(gateway)).choices[0].message.content
    assert _chat(_client(gateway, "hashed-key")).choices[0].message.content
    assert all(r.headers.get("authorization") != f"Bearer {TEAM_KEY}" for r in fake.requests())


def test_model_or_task_not_allowed_is_403(gateway: str) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        _chat(_client(gateway), model="cloud")
    client = _client(gateway)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="auto", messages=MSG, extra_headers={"x-triage-task": "code"}
        )


def test_requests_per_minute_limit_is_429_with_retry_after(fake: FakeUpstreamThread) -> None:
    with serve(_app(fake, rpm=2)) as url:
        client = _client(url)
        _chat(client)
        _chat(client)
        with pytest.raises(openai.RateLimitError) as info:
            _chat(client)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert len(fake.requests()) == 2


def test_tokens_per_minute_limit_is_429(fake: FakeUpstreamThread) -> None:
    with serve(_app(fake, tpm=35)) as url:
        client = _client(url)

        def chat() -> Any:  # reserves ~2 prompt + 12 output tokens; the fake answers ~13
            return client.chat.completions.create(model="local", messages=MSG, max_tokens=12)  # type: ignore[arg-type]

        chat()
        chat()
        with pytest.raises(openai.RateLimitError):
            chat()


def test_budget_refusal_happens_before_any_upstream_call(fake: FakeUpstreamThread) -> None:
    with (
        serve(_app(fake, budget={"daily_usd": "0.0000001"})) as url,
        pytest.raises(openai.RateLimitError) as info,
    ):
        _chat(_client(url), model="cloud")
    assert info.value.code == "budget_exceeded"
    assert fake.requests() == []


def test_budget_counts_what_was_spent(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    data = _data(fake, budget={"daily_usd": "0.0003"})
    data["triage"] = {"ledger": {"path": str(tmp_path / "l.db")}}
    with serve(create_app(config_from(data, ENV))) as url:
        client = _client(url)
        statuses = []
        for _ in range(6):
            try:
                # The estimate before each call: its prompt plus 20 output tokens on gpt-4o.
                client.chat.completions.create(model="cloud", messages=MSG, max_tokens=20)  # type: ignore[arg-type]
                statuses.append(200)
            except openai.RateLimitError as exc:
                statuses.append(exc.status_code)
                assert exc.code == "budget_exceeded"
    assert 200 in statuses and statuses[-1] == 429
    assert len(fake.requests()) == statuses.count(200)


def test_local_only_key_never_reaches_a_cloud_deployment(fake: FakeUpstreamThread) -> None:
    data = _data(fake, data_policy="local_only")
    data["triage"] = {"default_route": ["cloud", "local"], "ledger": {"enabled": False}}
    with serve(create_app(config_from(data, ENV))) as url:
        routed = _client(url).chat.completions.with_raw_response.create(model="auto", messages=MSG)
        with pytest.raises(openai.PermissionDeniedError):
            _chat(_client(url), model="cloud")
    assert routed.headers["x-triage-route"] == "local"
    assert [r.json["model"] for r in fake.requests()] == ["small"]


def test_admin_endpoints_and_metrics_take_the_admin_key(gateway: str) -> None:
    assert httpx.get(gateway + "/admin/keys").status_code == 401
    assert httpx.get(gateway + "/metrics").status_code == 401
    assert (
        httpx.get(
            gateway + "/admin/keys", headers={"authorization": f"Bearer {TEAM_KEY}"}
        ).status_code
        == 401
    )
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    listing = httpx.get(gateway + "/admin/keys", headers=admin)
    assert listing.status_code == 200
    assert [k["id"] for k in listing.json()["data"]] == ["team", "hashed"]
    assert (
        TEAM_KEY not in listing.text
        and hashlib.sha256(b"hashed-key").hexdigest() not in listing.text
    )
    assert httpx.get(gateway + "/metrics", headers=admin).status_code == 200


def test_reload_applies_a_good_config_and_keeps_the_last_good_one(
    fake: FakeUpstreamThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    data = _data(fake)
    data["triage"] = {"ledger": {"enabled": False}}
    path.write_text(yaml.safe_dump(data))
    app = create_app(load_config(path, ENV), config_source=lambda: load_config(path, ENV))
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    with serve(app) as url:
        data["model_list"].append(deployment("extra", "hosted_vllm/x", fake.url + "/v1"))
        path.write_text(yaml.safe_dump(data))
        assert httpx.post(url + "/admin/reload", headers=admin).status_code == 200
        ids = {
            m["id"]
            for m in httpx.get(
                url + "/v1/models", headers={"authorization": f"Bearer {TEAM_KEY}"}
            ).json()["data"]
        }
        assert "extra" in ids
        path.write_text("model_list: [{model_name: broken, litellm_params: {modle: x}}]")
        refused = httpx.post(url + "/admin/reload", headers=admin)
        still = _chat(_client(url), model="extra")
    assert refused.status_code == 400
    assert "model_list[0].litellm_params.modle: unknown key" in refused.json()["error"]["message"]
    assert still.choices[0].message.content


def test_a_planted_secret_never_surfaces(
    fake: FakeUpstreamThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_fault(kind="status", status=401, message=f"bad key {UPSTREAM_SECRET}")
    fake.add_fault(kind="status", status=500, message=f"Traceback: key={UPSTREAM_SECRET}")
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    bodies: list[str] = []
    with serve(_app(fake)) as url:
        for _ in range(3):
            bodies.append(
                httpx.post(
                    url + "/v1/chat/completions",
                    json={"model": "cloud", "messages": MSG},
                    headers={"authorization": f"Bearer {TEAM_KEY}"},
                ).text
            )
        bodies.append(httpx.get(url + "/metrics", headers=admin).text)
        bodies.append(httpx.get(url + "/admin/keys", headers=admin).text)
        bodies.append(httpx.get(url + "/health/ready").text)
    sent = [r.headers.get("authorization") for r in fake.requests()]
    assert f"Bearer {UPSTREAM_SECRET}" in sent  # it was used upstream...
    for text in bodies + [r.getMessage() + str(getattr(r, "triage", "")) for r in caplog.records]:
        assert UPSTREAM_SECRET not in text  # ...and appears nowhere else
        assert TEAM_KEY not in text


def _serve_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triage.cli", "serve", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_refuses_to_listen_publicly_without_keys(tmp_path: Path) -> None:
    config = tmp_path / "open.yaml"
    config.write_text(
        yaml.safe_dump({"model_list": [deployment("a", "hosted_vllm/m", "http://127.0.0.1:9/v1")]})
    )
    result = _serve_cli(config, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr


def test_content_is_logged_only_for_keys_that_opt_in(
    fake: FakeUpstreamThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triage.requests")
    data = _data(fake)
    data["auth"]["keys"].append(
        {"id": "verbose", "key": "os.environ/VERBOSE_KEY", "log_content": True}
    )
    prompt = [{"role": "user", "content": "the secret recipe is cardamom"}]
    with serve(create_app(config_from(data, {**ENV, "VERBOSE_KEY": "vk-1234567890"}))) as url:
        for key in (TEAM_KEY, "vk-1234567890"):
            httpx.post(
                url + "/v1/chat/completions",
                json={"model": "local", "messages": prompt},
                headers={"authorization": f"Bearer {key}"},
            )
    logged = {r.triage["key_id"]: r.triage for r in caplog.records if r.name == "triage.requests"}  # type: ignore[attr-defined]
    assert "content" not in logged["team"]
    assert "cardamom" in logged["verbose"]["content"]["prompt"]
    assert logged["verbose"]["content"]["completion"]
