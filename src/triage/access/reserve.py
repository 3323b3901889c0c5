"""A request's worst case, which is what a key's limits hold for it until it is settled.

Tokens: the prompt estimate plus the output cap (`max_completion_tokens` or `max_tokens`, else
`auth.reserve_output_tokens`) times `n`. Cost: those tokens at the price of the most expensive
deployment the plan may reach (fallbacks included, local ones only for a local-only plan), so
that no fallback can take the key past its budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from triage.config.schema import Deployment
from triage.metering import Usage
from triage.policy import RoutePlan
from triage.protocol import ChatCompletionRequest, CompletionRequest, Request, chat_text

CHARS_PER_TOKEN = 4
CostOn = Callable[[Deployment, Usage], Decimal]
_GENERATES = (ChatCompletionRequest, CompletionRequest)  # a tuple: `A | B` is built per call


def prompt_chars(request: Request) -> int:
    if isinstance(request, ChatCompletionRequest):
        return len(chat_text(request))
    value = request.prompt if isinstance(request, CompletionRequest) else request.input
    return len(value) if isinstance(value, str) else sum(len(str(v)) for v in value)


def prompt_estimate(chars: int) -> int:
    """Prompt tokens of a prompt of `chars` characters (`prompt_chars`), by the usual four
    characters a token, rounded up."""
    return -(-chars // CHARS_PER_TOKEN)


def output_cap(request: Request, default: int) -> int:
    """The most output tokens the request can produce, over all its choices."""
    if not isinstance(request, _GENERATES):
        return 0  # embeddings produce no tokens
    limit = getattr(request, "max_completion_tokens", None) or request.max_tokens or default
    return int(limit) * (request.n or 1)


def reachable(plan: RoutePlan, groups: Mapping[str, Sequence[Deployment]]) -> list[Deployment]:
    names = list(plan.groups)
    for fallbacks in (plan.context_window_fallbacks, plan.content_policy_fallbacks):
        if fallbacks:  # most plans have none of one kind or the other
            for source in plan.groups:
                names += [g for g in fallbacks.get(source, ()) if g not in names]
    out = [d for name in names for d in groups.get(name, ())]
    return [d for d in out if d.model_info.local] if plan.local_only else out


def worst_case(
    request: Request,
    chars: int,
    plan: RoutePlan,
    groups: Mapping[str, Sequence[Deployment]],
    cost_on: CostOn,
    default_output: int,
) -> tuple[int, Decimal]:
    """(tokens, cost) that the request may use at most; `chars`: its `prompt_chars`, which
    the caller has worked out already."""
    prompt, output = prompt_estimate(chars), output_cap(request, default_output)
    usage = Usage(prompt, output, "estimated")
    worst: Decimal | None = None
    for deployment in reachable(plan, groups):  # max() of the costs: the first largest
        cost = cost_on(deployment, usage)
        if worst is None or cost > worst:
            worst = cost
    return prompt + output, Decimal(0) if worst is None else worst
