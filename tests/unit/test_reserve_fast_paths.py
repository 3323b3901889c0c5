"""The reserve path's shortcuts give the answers of the code they shortcut, for any input.

`MemoryLimits.take` asks `decide` only when `may_refuse` says it might refuse: the two must agree
on every count. `Accountant._cost` remembers a deployment's last compute cost, and `worst_case`
keeps a running max: both are played against the code they replaced (kept here as reference),
on hostile floats (0.0 and -0.0, huge, tiny) and throughputs that move between calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tests.helpers import config_from, deployment
from triage.access.reserve import reachable, worst_case
from triage.accounting import Accountant, _Tariff
from triage.config.schema import Deployment
from triage.metering import PriceBook, Usage
from triage.metrics import Metrics
from triage.policy import RoutePlan
from triage.protocol import ChatCompletionRequest
from triage.state.limits import Ask, Counted, decide, may_refuse

money = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False)
limit = st.none() | st.integers(min_value=0, max_value=50)
budget = st.none() | money


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(st.integers(0, 60), money, limit, limit, budget, budget),
    st.tuples(st.integers(0, 60), st.integers(0, 120), money, money, money),
)
def test_may_refuse_is_exactly_when_decide_refuses(
    asked: tuple[int, Decimal, int | None, int | None, Decimal | None, Decimal | None],
    counts: tuple[int, int, Decimal, Decimal, Decimal],
) -> None:
    ask = Ask("k", *asked)
    requests, tokens, day, month, held = counts
    now = 1_700_000_000.0
    counted = Counted(requests, now - 5, tokens, now - 7, {"day": day, "month": month}, held)
    refusal = decide(ask, counted, now)
    assert may_refuse(ask, requests, tokens, day, month, held) is (refusal is not None)


def _accountant() -> Accountant:
    config = config_from(
        {
            "model_list": [
                deployment(
                    "local", "ollama/llama3", "http://127.0.0.1:9", local=True, gpu_hour_cost=0.6
                ),
                deployment(
                    "local", "ollama/qwen", "http://127.0.0.1:9", local=True, gpu_hour_cost=1.7
                ),
                deployment("cloud", "openai/gpt-4o"),
            ]
        }
    )
    return Accountant(config, PriceBook(), Metrics(CollectorRegistry()), None, time.time)


def _reference_cost(acc: Accountant, d: Deployment, usage: Usage, seconds: float) -> Decimal:
    """`Accountant._cost` as it was before it kept the last compute cost."""
    tariff = _Tariff(d)
    if tariff.by_compute:
        assert tariff.compute is not None
        return PriceBook.compute_cost(
            tariff.compute,
            usage,
            upstream_seconds=seconds,
            throughput=acc.throughput.tokens_per_second(d.id),
        )
    return PriceBook.cost(tariff.per_token(acc.prices), usage)


floats = st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e300, 0.37, 2.5]) | st.floats(
    min_value=0, max_value=1e6, allow_nan=False
)
step = st.tuples(
    st.integers(0, 3),  # deployment
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.none() | floats,  # the backend's reported compute seconds
    floats,  # upstream seconds
    st.none() | st.tuples(st.integers(0, 10_000), floats),  # a request observed first
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=12))
def test_compute_cost_memo_matches_the_arithmetic(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    acc = _accountant()
    deps = [d for group in acc.config.model_list for d in [group]]
    for index, prompt, completion, reported, seconds, observed in steps:
        d = deps[index % len(deps)]
        if observed is not None:
            acc.throughput.observe(d.id, *observed)
        usage = Usage(prompt, completion, "upstream", reported)
        for _ in range(2):  # the second call is served by the memo
            got = _outcome(lambda: acc.cost_on(d, usage, seconds))  # noqa: B023
            assert got == _outcome(lambda: _reference_cost(acc, d, usage, seconds))  # noqa: B023


def _outcome(work: Callable[[], Decimal]) -> str:
    """The cost's text, or the error's type: an absurd time (1e300 s) fails as it did."""
    try:
        return str(work())
    except ArithmeticError as exc:
        return type(exc).__name__


def _reference_worst(request: ChatCompletionRequest, plan: RoutePlan, acc: Accountant) -> Decimal:
    usage = Usage(-(-len(request.messages[0].content or "") // 4), 256, "estimated")  # type: ignore[arg-type]
    deps = reachable(plan, _groups(acc))
    return max([_reference_cost(acc, d, usage, 0.0) for d in deps], default=Decimal(0))


def _groups(acc: Accountant) -> dict[str, list[Deployment]]:
    out: dict[str, list[Deployment]] = {}
    for d in acc.config.model_list:
        out.setdefault(d.model_name, []).append(d)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=400),
    st.lists(st.sampled_from(["local", "cloud", "nowhere"]), min_size=0, max_size=3),
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), floats), max_size=6),
)
def test_worst_case_matches_the_max_of_every_cost(
    text: str, groups: list[str], local_only: bool, observed: list[tuple[int, int, float]]
) -> None:
    acc = _accountant()
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    plan = RoutePlan(
        tuple(groups), 30.0, None, 60.0, 3, {"local": ("cloud",)}, local_only=local_only
    )
    for index, tokens, seconds in observed:
        acc.throughput.observe(acc.config.model_list[index].id, tokens, seconds)
        got = _outcome(
            lambda: worst_case(
                request, len(text), plan, _groups(acc), lambda d, u: acc.cost_on(d, u, 0.0), 256
            )[1]
        )
        assert got == _outcome(lambda: _reference_worst(request, plan, acc))
