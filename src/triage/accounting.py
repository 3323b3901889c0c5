"""The meter-and-record step of a request: usage -> cost -> savings -> ledger row -> metrics.

Kept apart from service.py so the request flow reads as a pipeline and this bookkeeping can be
tested on its own. Everything here runs after the upstream answered (or failed).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeGuard

from triage.config.schema import Config, Deployment
from triage.engine.base import AttemptRecord, Outcome, fallbacks_of
from triage.errors import CLIENT_DISCONNECTED
from triage.identity import ByIdentity
from triage.ledger import GroupCommit, LedgerRow, LedgerStore
from triage.metering import (
    ComputePrice,
    Price,
    PriceBook,
    ThroughputEstimator,
    Usage,
    backend_compute_seconds,
    compute_seconds,
    counterfactual_cost,
)
from triage.metrics import Metrics
from triage.protocol import ChatCompletionRequest, CompletionRequest, Request, chat_text
from triage.state.limits import Reservation

log = logging.getLogger("triage.requests")
ZERO = Decimal(0)


@dataclass
class Record:
    """Everything known about one finished request."""

    endpoint: str
    request_id: str
    task: str
    tier: str
    route_name: str
    status: int
    started: float
    finished: float
    stream: bool = False
    outcome: Outcome | None = None
    usage: Usage | None = None
    ttft: float | None = None
    cost: Decimal = ZERO
    counterfactual: Decimal = ZERO
    key_id: str | None = None
    content: dict[str, str] | None = None  # only for keys that opted in to content logging
    # Filled by the engine as it goes: where a failed or cancelled request went.
    attempts: list[AttemptRecord] = field(default_factory=list)
    error: str = ""  # the failure's kind (triage.errors.error_kind); "" when it succeeded
    reservation: Reservation | None = None  # what the key's limits hold until it is settled

    def where(self) -> tuple[str, str]:
        """(model group, deployment id) that answered, or else that the last attempt tried."""
        if self.outcome is not None:
            return self.outcome.group, self.outcome.deployment.id
        if self.attempts:
            return self.attempts[-1].group, self.attempts[-1].deployment
        return "", ""

    @property
    def error_kind(self) -> str:
        if self.error or self.status < 400:
            return self.error
        return CLIENT_DISCONNECTED if self.status == 499 else "error"


def usage_from(body: Mapping[str, Any] | None, *, estimate: Callable[[], tuple[int, int]]) -> Usage:
    """The upstream's own usage when it gave one that makes sense, else an estimate marked as
    such. A count that is not a non-negative integer (negative, a boolean, a string) is not
    believed: an upstream's nonsense must not fail a request it answered, nor lower a counter."""
    raw = (body or {}).get("usage")
    compute = backend_compute_seconds(body) if body else None
    if isinstance(raw, Mapping):
        prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
        if _count(prompt) and (completion is None or _count(completion)):
            return Usage(prompt, completion or 0, "upstream", compute)
    prompt, completion = estimate()
    return Usage(prompt, completion, "estimated", compute)


def _count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0


# Where each counter of a _Bound sits in its cells.
REQUESTS, TOKENS_IN, TOKENS_OUT, COST, AVOIDED = range(5)


class _Bound:
    """The metric children of one (endpoint, task, tier, group, deployment, status), as plain
    cells and observers of the registry's tally (metrics.tally: published on collect, no lock
    per update). Every amount added here is >= 0 (a cost is checked first)."""

    def __init__(self, m: Metrics, key: tuple[str, str, str, str, str, int]) -> None:
        endpoint, task, tier, group, deployment, status = key
        tally = m.tally
        self.counts = tally.cells(  # in the order of REQUESTS, TOKENS_IN, ... above
            m.requests.labels(endpoint, task, tier, group, deployment, str(status)),
            m.tokens.labels("in", group),
            m.tokens.labels("out", group),
            m.cost.labels(task, group),
            m.avoided.labels(task, group),
        )
        self.upstream = tally.histogram(m.upstream.labels(deployment))
        self.duration = tally.histogram(m.duration.labels(endpoint, group))
        self.ttft = tally.histogram(m.ttft.labels(group))
        self.overhead = tally.histogram(m.overhead.labels(endpoint))


class _Tariff:
    """How one deployment is priced: its model name, override and compute price."""

    def __init__(self, deployment: Deployment) -> None:
        params, info = deployment.litellm_params, deployment.model_info
        self.id = deployment.id  # a property of the config model: read once
        self.model = params.model
        self.override: Price | None = None
        if params.input_cost_per_token is not None or params.output_cost_per_token is not None:
            self.override = Price(
                params.input_cost_per_token or ZERO,
                params.output_cost_per_token or ZERO,
                "override",
            )
        gpu_hour_cost = info.gpu_hour_cost
        self.compute = ComputePrice(gpu_hour_cost) if gpu_hour_cost is not None else None
        # PriceBook.request_cost's choice, made once: an override beats a compute price,
        # which beats the bundled map (looked up on first use, then kept).
        self.by_compute = self.compute is not None and self.override is None
        self.price: Price | None = None
        # The last compute cost: (seconds, their sign, cost). A cost is a function of the
        # seconds alone, so the same seconds (a worst case, or a throughput not moved since)
        # skip the Decimal arithmetic; the sign keeps -0.0 apart from 0.0, as repr() does.
        self.last: tuple[float, float, Decimal] = (math.nan, 1.0, ZERO)

    def per_token(self, prices: PriceBook) -> Price:
        if self.price is None:
            self.price = prices.price_for(self.model, override=self.override)
        return self.price


class Accountant:
    def __init__(
        self,
        config: Config,
        prices: PriceBook,
        metrics: Metrics,
        ledger: LedgerStore | None,
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.prices = prices
        self.metrics = metrics
        self.ledger = ledger
        self.commits = GroupCommit(ledger) if ledger is not None else None
        self.wall_clock = wall_clock
        self.throughput = ThroughputEstimator()
        # Bound label children per label set: labels() is a dict lookup plus validation that
        # costs more than the increment itself. The key space is bounded by the config.
        self._bound: dict[tuple[str, str, str, str, str, int], _Bound] = {}
        # A deployment's prices, validated once: the worst case of every limited request prices
        # each deployment its plan may reach.
        self._tariffs: ByIdentity[Deployment, _Tariff] = ByIdentity(_Tariff)
        self._reference = config.triage.savings.reference_model

    def price(self, record: Record) -> None:
        """Fill in cost and counterfactual cost from the record's usage."""
        usage, outcome = record.usage, record.outcome
        if usage is None or outcome is None:
            return
        tariff, seconds = self._tariff(outcome.deployment), outcome.upstream_seconds
        self.throughput.observe(tariff.id, usage.total_tokens, seconds)
        record.cost = self._cost(tariff, usage, seconds)
        if self._reference:
            record.counterfactual = counterfactual_cost(self.prices, self._reference, usage)

    def cost_on(self, deployment: Deployment, usage: Usage, seconds: float) -> Decimal:
        return self._cost(self._tariff(deployment), usage, seconds)

    def _tariff(self, deployment: Deployment) -> _Tariff:
        return self._tariffs.of(deployment)

    def _cost(self, tariff: _Tariff, usage: Usage, seconds: float) -> Decimal:
        if not tariff.by_compute:
            return PriceBook.cost(tariff.per_token(self.prices), usage)
        assert tariff.compute is not None  # by_compute says so; for mypy
        rate = self.throughput.tokens_per_second(tariff.id)
        spent = compute_seconds(usage, upstream_seconds=seconds, throughput=rate)
        last, sign = tariff.last, math.copysign(1.0, spent)
        if spent == last[0] and sign == last[1]:
            return last[2]
        cost = PriceBook.seconds_cost(tariff.compute, spent)
        tariff.last = (spent, sign, cost)
        return cost

    def record(self, record: Record) -> asyncio.Future[None] | None:
        """Meter, count and log `record` and queue its ledger row. The request may be
        acknowledged once the returned future (None: nothing to wait for) has resolved."""
        self.price(record)
        where = record.where()
        self._metrics(record, where)
        row = self._row(record, where)
        committed = self.commits.submit(row) if self.commits is not None else None
        if log.isEnabledFor(logging.INFO):
            fields = _log_fields(row)
            if record.content is not None:
                fields["content"] = record.content
            log.info("request", extra={"triage": fields})
        return committed

    def _row(self, r: Record, where: tuple[str, str]) -> LedgerRow:
        outcome = r.outcome
        usage = r.usage or Usage(0, 0, "estimated")
        route, deployment = where
        attempts = outcome.attempts if outcome else r.attempts
        return LedgerRow(
            ts=self.wall_clock(),
            request_id=r.request_id,
            key_id=r.key_id,
            task=r.task,
            tier=r.tier,
            route=route,
            deployment=deployment,
            status=r.status,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            usage_source=usage.source,
            cost_usd=r.cost,
            counterfactual_usd=r.counterfactual,
            latency_s=r.finished - r.started,
            ttft_s=r.ttft,
            stream=r.stream,
            attempts=len(attempts),
            fallbacks=fallbacks_of(attempts),
            error=r.error_kind,
        )

    def _metrics(self, r: Record, where: tuple[str, str]) -> None:
        group, deployment = where
        key = (r.endpoint, r.task, r.tier, group, deployment, r.status)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = _Bound(self.metrics, key)
        cost = float(r.cost)
        if cost < 0:  # what Counter.inc says; the cells below do not check
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        counts = bound.counts
        counts[REQUESTS] += 1.0
        if r.status >= 400:
            self.metrics.errors.labels(r.endpoint, group, deployment, r.error_kind).inc()
        total = r.finished - r.started
        bound.duration(total)
        if r.ttft is not None:
            bound.ttft(r.ttft)
        if r.outcome is not None:
            upstream = 0.0  # a loop: cheaper than sum() over a generator, the same sum
            for attempt in r.outcome.attempts:
                upstream += attempt.seconds
            bound.upstream(r.outcome.upstream_seconds)
            overhead = total - upstream
            bound.overhead(overhead if overhead > 0.0 else 0.0)  # max(0.0, ...), NaN included
        attempts = r.outcome.attempts if r.outcome else r.attempts
        if len(attempts) > 1:  # failed requests retried and fell back too
            self._attempt_metrics(attempts)
        if r.usage is not None:
            counts[TOKENS_IN] += r.usage.prompt_tokens
            counts[TOKENS_OUT] += r.usage.completion_tokens
        counts[COST] += cost
        if r.counterfactual:
            avoided = float(r.counterfactual - r.cost)
            counts[AVOIDED] += avoided if avoided > 0.0 else 0.0

    def _attempt_metrics(self, attempts: list[AttemptRecord]) -> None:
        for before, after in zip(attempts, attempts[1:], strict=False):
            if before.group == after.group:
                self.metrics.retries.labels(before.group, before.kind or "unknown").inc()
            else:
                reason = before.kind or "unknown"
                self.metrics.fallbacks.labels(before.group, after.group, reason).inc()


def _log_fields(row: LedgerRow) -> dict[str, Any]:
    fields = dict(row.__dict__)
    fields["cost_usd"] = str(row.cost_usd)
    fields["counterfactual_usd"] = str(row.counterfactual_usd)
    return fields


def content_of(request: Request, body: dict[str, Any]) -> dict[str, str]:
    """Prompt and completion text, for a key that opted in to content logging."""
    if isinstance(request, ChatCompletionRequest):
        prompt = chat_text(request)
    else:
        value = request.prompt if isinstance(request, CompletionRequest) else request.input
        prompt = value if isinstance(value, str) else str(value)
    parts = []
    for choice in body.get("choices", []):
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
    return {"prompt": prompt, "completion": "\n".join(parts)}
