"""Loading a config: YAML text -> env references resolved -> validated `Config`.

Every problem is collected with its YAML path (`model_list[1].litellm_params.api_base: not a
URL`) and raised together as one `ConfigError`, so an operator fixes a file in one pass. Values
of the form `os.environ/NAME` are read from the environment mapping the caller passes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from triage.config.references import check_references
from triage.config.schema import Config

ENV_PREFIX = "os.environ/"


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists every `path: message`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} error(s)\n" + "\n".join(problems))


def load_config(path: str | Path, env: Mapping[str, str]) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"<file>: cannot read: {exc.strerror}"]) from None
    return parse_config(text, env, source=source)


def parse_config(text: str, env: Mapping[str, str], *, source: str = "<config>") -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ConfigError(source, [f"<yaml> ({where}): {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["<root>: expected a mapping of settings"])
    return build_config(data, env, source=source)


def build_config(data: dict[str, Any], env: Mapping[str, str], *, source: str) -> Config:
    problems = _literal_secrets(data)
    resolved = _resolve_env(data, env, "", problems)
    config: Config | None = None
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        problems += [_describe(err) for err in exc.errors()]
    problems += [f"{path}: {message}" for path, message in check_references(resolved)]
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def _resolve_env(value: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, env, _join(path, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in env:
            problems.append(f"{path}: environment variable {name} is not set")
            return None
        return env[name]
    return value


def _literal_secrets(data: dict[str, Any]) -> list[str]:
    """Client and admin keys must come from the environment (or as a SHA-256 digest), and so
    must a state store URL that carries a password."""
    problems: list[str] = []
    state = data.get("state")
    url = state.get("url") if isinstance(state, dict) else None
    if isinstance(url, str) and not url.startswith(ENV_PREFIX) and "@" in url:
        problems.append("state.url: holds credentials; write it as an os.environ/ reference")
    auth = data.get("auth")
    if not isinstance(auth, dict):
        return problems
    admin = auth.get("admin_key")
    if admin is not None and not (isinstance(admin, str) and admin.startswith(ENV_PREFIX)):
        problems.append("auth.admin_key: must be an os.environ/ reference, not a literal")
    keys = auth.get("keys")
    for i, spec in enumerate(keys if isinstance(keys, list) else []):
        value = spec.get("key") if isinstance(spec, dict) else None
        if value is not None and not (isinstance(value, str) and value.startswith(ENV_PREFIX)):
            problems.append(
                f"auth.keys[{i}].key: must be an os.environ/ reference or use key_sha256"
            )
    return problems


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(error: Mapping[str, Any]) -> str:
    path = ""
    for part in error.get("loc", ()):
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{path or '<root>'}: {message}"


def summary(config: Config) -> str:
    groups = config.groups
    routes = len(config.triage.routes)
    return (
        f"ok: {len(config.model_list)} deployment(s) in {len(groups)} model group(s), "
        f"{routes} task route(s), aliases {', '.join(config.triage.aliases) or '-'}"
    )
