"""`state: {backend: redis, url: ...}` and `keys[].on_store_failure` in the config: a redis
backend needs a redis URL, a URL with credentials must come from the environment, the password
never shows in errors or reprs, and which keys fail closed by default."""

from __future__ import annotations

import pytest

from triage.config import ConfigError, parse_config

BASE = """
model_list:
  - model_name: chat
    litellm_params: {model: hosted_vllm/small, api_base: "http://127.0.0.1:1/v1"}
"""


def _parse(extra: str, env: dict[str, str] | None = None) -> object:
    return parse_config(BASE + extra, env or {})


def test_redis_backend_needs_a_redis_url() -> None:
    with pytest.raises(ConfigError) as missing:
        _parse("state: {backend: redis}")
    assert "backend redis needs url" in str(missing.value)
    with pytest.raises(ConfigError) as wrong:
        _parse("state: {backend: redis, url: 'http://127.0.0.1:6379'}")
    assert "expected redis://" in str(wrong.value)


def test_a_url_with_credentials_must_be_an_environment_reference() -> None:
    secret = "redis://user:hunter2-secret@127.0.0.1:6379/0"
    with pytest.raises(ConfigError) as literal:
        _parse(f"state: {{backend: redis, url: '{secret}'}}")
    assert "state.url: holds credentials" in str(literal.value)
    assert "hunter2" not in str(literal.value)
    config = _parse("state: {backend: redis, url: os.environ/STATE_URL}", {"STATE_URL": secret})
    assert "hunter2" not in repr(config)


def test_keys_with_a_budget_fail_closed_unless_told_otherwise() -> None:
    config = _parse(
        """
state: {backend: redis, url: 'redis://127.0.0.1:6379/0'}
auth:
  keys:
    - {id: paid, key_sha256: SHA, budget: {daily_usd: 5}}
    - {id: free, key_sha256: SHA, rpm: 10}
    - {id: paid-open, key_sha256: SHA, budget: {monthly_usd: 5}, on_store_failure: fail_open}
    - {id: free-closed, key_sha256: SHA, on_store_failure: fail_closed}
""".replace("SHA", "a" * 64)
    )
    keys = {k.id: k.fails_open for k in config.auth.keys}  # type: ignore[attr-defined]
    assert keys == {"paid": False, "free": True, "paid-open": True, "free-closed": False}


def test_an_unknown_failure_policy_is_refused() -> None:
    with pytest.raises(ConfigError) as bad:
        _parse(
            """
auth:
  keys: [{id: k, key_sha256: SHA, on_store_failure: sometimes}]
""".replace("SHA", "a" * 64)
        )
    assert "auth.keys[0].on_store_failure" in str(bad.value)
