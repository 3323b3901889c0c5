"""Cross-reference checks: every model group, task and fallback a config names must exist.

They run on the raw (env-resolved) mapping, so they report alongside shape errors in the same
pass: an operator sees a typo'd key, a missing env var and a fallback to an unknown group at once.
Returns (YAML path, message) pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from triage.classify import TASKS
from triage.config.schema import OPENAI_PROTOCOL_PROVIDERS

Problem = tuple[str, str]
FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_references(data: Mapping[str, Any]) -> list[Problem]:
    entries = [_map(e) for e in _list(data.get("model_list"))]
    groups = {str(e.get("model_name")) for e in entries if e.get("model_name")}
    problems = _duplicate_ids(entries) + _lane_fits(entries)
    router = _map(data.get("router_settings"))
    for key in FALLBACK_KEYS:
        problems += _fallback_refs(f"router_settings.{key}", router.get(key), groups)
    triage = _map(data.get("triage"))
    problems += _route_refs(triage, groups)
    aliases = {str(a) for a in _list(triage.get("aliases"))} if "aliases" in triage else {"auto"}
    problems += [
        (f"router_settings.model_group_alias.{name}", f'unknown model group or alias "{target}"')
        for name, target in _map(router.get("model_group_alias")).items()
        if target not in groups | aliases
    ]
    for i, alias in enumerate(_list(triage.get("aliases"))):
        if alias in groups:
            problems.append((f"triage.aliases[{i}]", f'"{alias}" is also a model group name'))
    problems += _key_refs(_map(data.get("auth")), groups | aliases)
    problems += _cache_refs(_map(triage.get("cache")), groups, _map(data.get("auth")))
    return problems


def _cache_refs(
    cache: Mapping[str, Any], groups: set[str], auth: Mapping[str, Any]
) -> list[Problem]:
    routes = groups | set(TASKS) | {"default", "escalate"}
    keys = {str(_map(k).get("id")) for k in _list(auth.get("keys"))}
    problems = [
        (f"triage.cache.routes.{name}", f'unknown route or model group "{name}"')
        for name in _map(cache.get("routes"))
        if name not in routes
    ]
    return problems + [
        (f"triage.cache.keys.{name}", f'unknown key id "{name}"')
        for name in _map(cache.get("keys"))
        if name not in keys
    ]


def _key_refs(auth: Mapping[str, Any], models: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, spec in enumerate(_map(k) for k in _list(auth.get("keys"))):
        if spec.get("id") in seen:
            problems.append((f"auth.keys[{i}].id", f'duplicate key id "{spec.get("id")}"'))
        seen.add(str(spec.get("id")))
        problems += [
            (f"auth.keys[{i}].models[{j}]", f'unknown model group or alias "{name}"')
            for j, name in enumerate(_list(spec.get("models")))
            if name not in models
        ]
        problems += [
            (f"auth.keys[{i}].tasks[{j}]", f'unknown task "{task}"')
            for j, task in enumerate(_list(spec.get("tasks")))
            if task not in TASKS
        ]
    return problems


def _duplicate_ids(entries: list[Mapping[str, Any]]) -> list[Problem]:
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        ident = _map(entry.get("model_info")).get("id")
        if ident in seen:
            problems.append(
                (f"model_list[{i}].model_info.id", f'duplicate deployment id "{ident}"')
            )
        seen.add(str(ident))
    return problems


def _lane_fits(entries: list[Mapping[str, Any]]) -> list[Problem]:
    """A deployment pinned to the native lane must speak the OpenAI protocol."""
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        model = _map(entry.get("litellm_params")).get("model")
        provider = model.split("/", 1)[0] if isinstance(model, str) else None
        lane = _map(entry.get("model_info")).get("lane")
        if lane == "native" and provider and provider not in OPENAI_PROTOCOL_PROVIDERS:
            problems.append(
                (
                    f"model_list[{i}].model_info.lane",
                    f'provider "{provider}" does not speak the OpenAI protocol, so it cannot '
                    'use the "native" lane; use "litellm" or "auto"',
                )
            )
    return problems


def _route_refs(triage: Mapping[str, Any], groups: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    problems += _groups_exist("triage.default_route", triage.get("default_route"), groups)
    for task, route in _map(triage.get("routes")).items():
        if task not in TASKS:
            problems.append((f"triage.routes.{task}", f'unknown task "{task}"'))
        problems += _groups_exist(f"triage.routes.{task}", route, groups)
    escalate = _map(triage.get("escalate"))
    problems += _groups_exist("triage.escalate.route", escalate.get("route"), groups)
    embedding = triage.get("embedding_route")
    if embedding is not None and embedding not in groups:
        problems.append(("triage.embedding_route", f'unknown model group "{embedding}"'))
    for key in ("examples", "tiers"):
        problems += [
            (f"triage.{key}.{task}", f'unknown task "{task}"')
            for task in _map(triage.get(key))
            if task not in TASKS
        ]
    return problems


def _groups_exist(path: str, route: Any, groups: set[str]) -> list[Problem]:
    if isinstance(route, Mapping):
        route, path = route.get("groups"), f"{path}.groups"
    return [
        (f"{path}[{i}]", f'unknown model group "{name}"')
        for i, name in enumerate(_list(route))
        if name not in groups
    ]


def _fallback_refs(path: str, fallbacks: Any, groups: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for i, entry in enumerate(_list(fallbacks)):
        for source, targets in _map(entry).items():
            if source not in groups:
                problems.append((f"{path}[{i}].{source}", f'unknown model group "{source}"'))
            problems += _groups_exist(f"{path}[{i}].{source}", targets, groups)
    return problems
