"""What Triage would do with a request, without calling any model: the classification, the
planned route with its fallbacks, the candidate deployments and an estimated cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from triage.metering import Usage, format_usd
from triage.protocol import ChatCompletionRequest, chat_text
from triage.service import Meta, Service

CHARS_PER_TOKEN = 4
DEFAULT_OUTPUT_TOKENS = 256


def explain(service: Service, request: ChatCompletionRequest, meta: Meta) -> dict[str, Any]:
    plan = service.plan(request, meta)
    prompt_tokens = len(chat_text(request)) // CHARS_PER_TOKEN
    output_tokens = request.max_completion_tokens or request.max_tokens or DEFAULT_OUTPUT_TOKENS
    usage = Usage(prompt_tokens, output_tokens, "estimated")
    engine, accountant = service.engine, service.accountant
    now = engine.clock()
    candidates: list[dict[str, Any]] = []
    for group in plan.groups:
        for deployment in engine.groups[group]:
            cost = accountant.cost_on(deployment, usage, 0.0)
            latency = engine.store.latency(deployment.id, stream=bool(request.stream))
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
    first = [c for c in candidates if c["group"] == plan.groups[0]]
    estimate = min((Decimal(str(c["estimated_cost_usd"])) for c in first), default=Decimal(0))
    result = plan.classification
    return {
        "model": request.model,
        "routed": plan.routed,
        "classification": None
        if result is None
        else {
            "task": result.task,
            "tier": plan.tier,
            "confidence": round(result.confidence, 4),
            "difficulty": round(result.difficulty, 4),
            "reason": result.reason,
            "probabilities": {k: round(v, 4) for k, v in result.probabilities.items()},
        },
        "route": {
            "name": plan.route_name,
            "groups": list(plan.groups),
            "context_window_fallbacks": {
                k: list(v) for k, v in plan.context_window_fallbacks.items()
            },
            "content_policy_fallbacks": {
                k: list(v) for k, v in plan.content_policy_fallbacks.items()
            },
            "timeout": plan.timeout,
            "deadline": plan.deadline,
            "max_attempts": plan.max_attempts,
        },
        "candidates": candidates,
        "estimated_tokens": {"prompt": prompt_tokens, "completion": output_tokens},
        "estimated_cost_usd": format_usd(estimate),
    }
