"""Config loading: strict keys, env references, cross-references, every error with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from triage.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

BAD = """
model_list:
  - model_name: local-small
    litellm_params: {model: ollama_chat/llama3.2, api_bse: http://127.0.0.1:11434}
  - model_name: cloud-large
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/TRIAGE_TEST_MISSING_KEY}
router_settings:
  fallbacks: [{local-small: [gpt-fast]}]
"""


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config.example.yaml", {})
    assert set(config.groups) == {"local-small", "local-coder", "cloud-large"}
    assert config.auth.keys[0].id == "team-search"
    text = (
        (ROOT / "config.example.yaml")
        .read_text()
        .replace("# api_key: os.environ", "api_key: os.environ")
    )
    with_keys = parse_config(text, {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "a"})
    key = with_keys.model_list[2].litellm_params.api_key
    assert key is not None and key.get_secret_value() == "sk-1"


def test_every_problem_is_reported_with_its_yaml_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, {})
    problems = "\n".join(info.value.problems)
    assert "model_list[0].litellm_params.api_bse: unknown key" in problems
    assert (
        "model_list[1].litellm_params.api_key: environment variable TRIAGE_TEST_MISSING_KEY"
        in problems
    )
    assert 'router_settings.fallbacks[0].local-small[0]: unknown model group "gpt-fast"' in problems
    assert len(info.value.problems) == 3


def test_unknown_fallback_group_is_named() -> None:
    text = BAD.replace("api_bse", "api_base").replace("os.environ/TRIAGE_TEST_MISSING_KEY", "k")
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert info.value.problems == [
        'router_settings.fallbacks[0].local-small[0]: unknown model group "gpt-fast"'
    ]


def test_bad_url_and_unknown_task_route() -> None:
    text = """
model_list:
  - model_name: a
    litellm_params: {model: openai/x, api_base: "not a url"}
triage:
  routes: {poetry: [a], code: [b]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert "model_list[0].litellm_params.api_base: not a URL" in info.value.problems
    assert 'triage.routes.poetry: unknown task "poetry"' in info.value.problems
    assert 'triage.routes.code[0]: unknown model group "b"' in info.value.problems


def test_secret_is_not_in_the_config_repr() -> None:
    config = parse_config(
        "model_list: [{model_name: a, litellm_params: {model: openai/x, api_key: sk-SECRET123}}]",
        {},
    )
    assert "sk-SECRET123" not in repr(config)
    assert "sk-SECRET123" not in config.model_dump_json()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triage.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_check_config_cli_passes_on_the_example() -> None:
    result = _cli("check-config", "config.example.yaml", env={"PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 4 deployment(s) in 3 model group(s)")


def test_check_config_cli_names_all_three_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD.replace("os.environ/TRIAGE_TEST_MISSING_KEY", "os.environ/NOPE_NOT_SET"))
    result = _cli("check-config", str(bad), env={"PATH": "/usr/bin"})
    assert result.returncode == 1
    assert "model_list[0].litellm_params.api_bse: unknown key" in result.stderr
    assert (
        "model_list[1].litellm_params.api_key: environment variable NOPE_NOT_SET" in result.stderr
    )
    assert (
        'router_settings.fallbacks[0].local-small[0]: unknown model group "gpt-fast"'
        in result.stderr
    )


def test_client_and_admin_keys_must_not_be_literals() -> None:
    text = """
model_list: [{model_name: a, litellm_params: {model: openai/x}}]
auth:
  admin_key: plain-admin
  keys:
    - {id: t1, key: plain-secret, models: [a, ghost]}
    - {id: t2}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    problems = info.value.problems
    assert "auth.admin_key: must be an os.environ/ reference, not a literal" in problems
    assert "auth.keys[0].key: must be an os.environ/ reference or use key_sha256" in problems
    assert 'auth.keys[0].models[1]: unknown model group or alias "ghost"' in problems
    assert any(p.startswith("auth.keys[1]: ") and "exactly one of key" in p for p in problems)
    assert all("plain-secret" not in p and "plain-admin" not in p for p in problems)
