"""What Triage would do with a request, without calling any model: the classification, the
planned route with its fallbacks, the candidate deployments and an estimated cost.

The plan is the one a real request gets (`Service.decide`): cut down to what the caller's key
may reach, and, when the sensitive scan fires or the key's data policy says so, limited to local
deployments: the candidates are then only those a sensitive request may reach, and the answer
says why (`local_only`, `sensitive`) and whether the request would be refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from triage.config.auth import KeySpec
from triage.config.schema import Deployment
from triage.metering import Usage, format_usd
from triage.policy import RoutePlan
from triage.protocol import ChatCompletionRequest, chat_text
from triage.service import Meta, Service

CHARS_PER_TOKEN = 4
DEFAULT_OUTPUT_TOKENS = 256


async def explain(
    service: Service, request: ChatCompletionRequest, meta: Meta, key: KeySpec | None = None
) -> dict[str, Any]:
    plan, _ = await service.decide("chat", request, meta, key)
    prompt_tokens = len(chat_text(request)) // CHARS_PER_TOKEN
    output_tokens = request.max_completion_tokens or request.max_tokens or DEFAULT_OUTPUT_TOKENS
    usage = Usage(prompt_tokens, output_tokens, "estimated")
    candidates = _candidates(service, plan, usage, stream=bool(request.stream))
    first = [c for c in candidates if plan.groups and c["group"] == plan.groups[0]]
    estimate = min((Decimal(str(c["estimated_cost_usd"])) for c in first), default=Decimal(0))
    return {
        "model": request.model,
        "routed": plan.routed,
        "classification": _classification(plan),
        "route": _route(plan),
        "local_only": plan.local_only,
        "sensitive": list(plan.sensitive),
        "refused": _refusal(plan, candidates),
        "candidates": candidates,
        "estimated_tokens": {"prompt": prompt_tokens, "completion": output_tokens},
        "estimated_cost_usd": format_usd(estimate),
    }


def _reachable(plan: RoutePlan, deployments: list[Deployment]) -> list[Deployment]:
    """The deployments the runner may call for `plan` (engine.runner.Engine._deployments)."""
    if plan.local_only:
        return [d for d in deployments if d.model_info.local]
    return deployments


def _candidates(
    service: Service, plan: RoutePlan, usage: Usage, *, stream: bool
) -> list[dict[str, Any]]:
    engine, accountant = service.engine, service.accountant
    now = engine.clock()
    candidates: list[dict[str, Any]] = []
    for group in plan.groups:
        for deployment in _reachable(plan, engine.groups[group]):
            cost = accountant.cost_on(deployment, usage, 0.0)
            latency = engine.store.latency(deployment.id, stream=stream)
            candidates.append(
                {
                    "group": group,
                    "deployment": deployment.id,
                    "model": deployment.litellm_params.model,
                    "local": deployment.model_info.local,
                    "state": engine.store.state(deployment.id, now).value,
                    "latency_ms": None if latency is None else round(latency * 1000, 2),
                    "estimated_cost_usd": format_usd(cost),
                }
            )
    return candidates


def _refusal(plan: RoutePlan, candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The 403 a real request would get when it may only go local and nothing local is on its
    route (as the runner answers it); None when it would be sent."""
    if not plan.local_only or candidates:
        return None
    why = "sensitive data" if plan.sensitive else "the key's data policy"
    return {
        "status": 403,
        "code": "local_only",
        "message": f"this request may only go to local deployments ({why}) and none is on "
        "its route",
    }


def _classification(plan: RoutePlan) -> dict[str, Any] | None:
    result = plan.classification
    if result is None:
        return None
    return {
        "task": result.task,
        "tier": plan.tier,
        "confidence": round(result.confidence, 4),
        "difficulty": round(result.difficulty, 4),
        "reason": result.reason,
        "probabilities": {k: round(v, 4) for k, v in result.probabilities.items()},
    }


def _route(plan: RoutePlan) -> dict[str, Any]:
    return {
        "name": plan.route_name,
        "groups": list(plan.groups),
        "context_window_fallbacks": {k: list(v) for k, v in plan.context_window_fallbacks.items()},
        "content_policy_fallbacks": {k: list(v) for k, v in plan.content_policy_fallbacks.items()},
        "timeout": plan.timeout,
        "deadline": plan.deadline,
        "max_attempts": plan.max_attempts,
    }
