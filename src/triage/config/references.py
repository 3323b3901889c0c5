"""Cross-reference checks: every model group, task and fallback a config names must exist.

Returns errors as (YAML path, message) pairs so the loader can report all of them at once.
"""

from __future__ import annotations

from triage.classify import TASKS
from triage.config.routes import Route
from triage.config.schema import Config, FallbackList

Problem = tuple[str, str]


def check_references(config: Config) -> list[Problem]:
    groups = set(config.groups)
    problems: list[Problem] = []
    problems += _duplicate_ids(config)
    problems += _route_refs(config, groups)
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        value: FallbackList = getattr(config.router_settings, key)
        problems += _fallback_refs(f"router_settings.{key}", value, groups)
    for i, alias in enumerate(config.triage.aliases):
        if alias in groups:
            problems.append((f"triage.aliases[{i}]", f'"{alias}" is also a model group name'))
    return problems


def _duplicate_ids(config: Config) -> list[Problem]:
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, deployment in enumerate(config.model_list):
        if deployment.id in seen:
            problems.append(
                (f"model_list[{i}].model_info.id", f'duplicate deployment id "{deployment.id}"')
            )
        seen.add(deployment.id)
    return problems


def _route_refs(config: Config, groups: set[str]) -> list[Problem]:
    settings = config.triage
    problems: list[Problem] = []
    if settings.default_route is not None:
        problems += _groups_exist("triage.default_route", settings.default_route, groups)
    for task, route in settings.routes.items():
        if task not in TASKS:
            problems.append((f"triage.routes.{task}", f'unknown task "{task}"'))
        problems += _groups_exist(f"triage.routes.{task}", route, groups)
    if settings.escalate is not None:
        problems += _groups_exist("triage.escalate.route", settings.escalate.route, groups)
    for task in settings.examples:
        if task not in TASKS:
            problems.append((f"triage.examples.{task}", f'unknown task "{task}"'))
    for task in settings.tiers:
        if task not in TASKS:
            problems.append((f"triage.tiers.{task}", f'unknown task "{task}"'))
    return problems


def _groups_exist(path: str, route: Route, groups: set[str]) -> list[Problem]:
    return [
        (f"{path}[{i}]", f'unknown model group "{name}"')
        for i, name in enumerate(route.groups)
        if name not in groups
    ]


def _fallback_refs(path: str, fallbacks: FallbackList, groups: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    for i, entry in enumerate(fallbacks):
        for source, targets in entry.items():
            if source not in groups:
                problems.append((f"{path}[{i}].{source}", f'unknown model group "{source}"'))
            problems += [
                (f"{path}[{i}].{source}[{j}]", f'unknown model group "{target}"')
                for j, target in enumerate(targets)
                if target not in groups
            ]
    return problems
