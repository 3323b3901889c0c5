"""Pure routing policy: (config, requested model, classification) -> RoutePlan.

A plan is the ordered list of model groups to try (the first, then its fallbacks), the
failure-kind-specific fallback maps, and the time and attempt budgets for the whole request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from triage.classify import DEFAULT_TIERS, Classification
from triage.config.routes import Route
from triage.config.schema import Config, Deployment, FallbackList
from triage.errors import NotFound, PermissionDenied


@dataclass(frozen=True)
class RoutePlan:
    groups: tuple[str, ...]
    timeout: float
    first_token_timeout: float | None
    deadline: float
    max_attempts: int
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content_policy_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    routed: bool = False
    task: str | None = None
    tier: str | None = None
    classification: Classification | None = None
    route_name: str = ""
    local_only: bool = False
    sensitive: tuple[str, ...] = ()
    # A deployment to use first while it is healthy, in whichever group of the plan holds it
    # (a sticky conversation's, so the backend's prefix cache is reused).
    prefer: str | None = None


def is_alias(config: Config, model: str) -> bool:
    return model in config.triage.aliases


def tier_of(config: Config, task: str) -> str:
    return config.triage.tiers.get(task) or DEFAULT_TIERS.get(task, "light")


class Planner:
    """The policy for one config. Plans depend only on the config and the route, so each
    route's is worked out once (on the hot path of every request) and then reused."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._plans: dict[tuple[str, str], RoutePlan] = {}

    def for_group(self, group: str) -> RoutePlan:
        """A client named a concrete model group: it and its configured fallbacks."""
        plan = self._plans.get(("group", group))
        if plan is None:
            if group not in self.config.groups:
                raise NotFound(f"The model `{group}` does not exist", param="model")
            plan = _plan(self.config, Route(groups=[group]), route_name=group)
            self._plans["group", group] = plan
        return plan

    def for_task(self, classification: Classification, *, forced: bool = False) -> RoutePlan:
        """An alias request: the task's route, escalated or defaulted as the config says."""
        config, settings = self.config, self.config.triage
        route, name = _route_for(config, classification, forced)
        if (
            settings.escalate is not None
            and not forced
            and classification.difficulty > settings.escalate.difficulty_above
        ):
            route, name = settings.escalate.route, "escalate"
        base = self._plans.get(("route", name))
        if base is None:
            base = self._plans["route", name] = _plan(config, route, route_name=name)
        return _routed(base, classification, tier_of(config, classification.task))


def _routed(base: RoutePlan, classification: Classification, tier: str) -> RoutePlan:
    """`replace(base, routed=True, task=…, tier=…, classification=…)` for every alias request,
    without `replace`'s walk over the fields (a third of its cost): the plan is a frozen
    dataclass with neither slots nor `__post_init__`, so its attributes are its whole state."""
    plan = object.__new__(RoutePlan)
    vars(plan).update(
        vars(base), routed=True, task=classification.task, tier=tier, classification=classification
    )
    return plan


def alias_groups(config: Config, name: str) -> tuple[str, ...]:
    """Every group an alias may route to, fallbacks included (nothing for a plain group)."""
    if not is_alias(config, name):
        return ()
    settings = config.triage
    routes = [*settings.routes.values(), default_route(config)]
    if settings.escalate is not None:
        routes.append(settings.escalate.route)
    out: list[str] = []
    for route in routes:
        plan = _plan(config, route, route_name="")
        for group in (*plan.groups, *_targets(plan)):
            if group not in out:
                out.append(group)
    return tuple(out)


def reaches(groups: Mapping[str, Sequence[Deployment]], plan: RoutePlan, provider: str) -> bool:
    """Whether the plan's route has a deployment of `provider` (the only case in which a
    client's native body is carried along, and the response cache, which keeps the chat form,
    is left out)."""
    route = [d for g in plan.groups for d in groups.get(g, ())]
    return any(d.litellm_params.provider == provider for d in route)


def restrict(plan: RoutePlan, allowed: frozenset[str]) -> RoutePlan:
    """`plan` without the groups outside `allowed`, in its main chain and in every fallback
    map; raises 403 when nothing is left to try."""
    groups = tuple(g for g in plan.groups if g in allowed)
    if not groups:
        raise PermissionDenied(
            "this key may not use any model group on this request's route", param="model"
        )
    return replace(
        plan,
        groups=groups,
        context_window_fallbacks=_only(plan.context_window_fallbacks, allowed),
        content_policy_fallbacks=_only(plan.content_policy_fallbacks, allowed),
    )


def _targets(plan: RoutePlan) -> list[str]:
    maps = (plan.context_window_fallbacks, plan.content_policy_fallbacks)
    return [g for m in maps for source in plan.groups for g in m.get(source, ())]


def _only(
    fallbacks: Mapping[str, tuple[str, ...]], allowed: frozenset[str]
) -> dict[str, tuple[str, ...]]:
    return {k: tuple(g for g in v if g in allowed) for k, v in fallbacks.items() if k in allowed}


def _route_for(config: Config, classification: Classification, forced: bool) -> tuple[Route, str]:
    settings = config.triage
    confident = forced or classification.confidence >= settings.min_confidence
    if confident and classification.task in settings.routes:
        return settings.routes[classification.task], classification.task
    return default_route(config), "default"


def default_route(config: Config) -> Route:
    if config.triage.default_route is not None:
        return config.triage.default_route
    return Route(groups=[config.model_list[0].model_name])


def _plan(config: Config, route: Route, *, route_name: str) -> RoutePlan:
    rs = config.router_settings
    general = _as_map(rs.fallbacks)
    groups: list[str] = list(route.groups)
    for group in route.groups:
        groups += [g for g in general.get(group, ()) if g not in groups]
    return RoutePlan(
        groups=tuple(groups),
        timeout=route.timeout or rs.timeout,
        first_token_timeout=route.first_token_timeout
        or config.triage.first_token_timeout
        or rs.stream_timeout,
        deadline=config.triage.deadline,
        max_attempts=config.triage.max_attempts,
        context_window_fallbacks=_as_map(rs.context_window_fallbacks),
        content_policy_fallbacks=_as_map(rs.content_policy_fallbacks),
        route_name=route_name,
    )


def _as_map(fallbacks: FallbackList) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for entry in fallbacks:
        for source, targets in entry.items():
            out[source] = out.get(source, ()) + tuple(targets)
    return out
