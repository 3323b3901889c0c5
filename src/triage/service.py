"""One request, end to end: classify -> plan -> engine -> meter -> record.

The API layer hands in a parsed request and gets back either a whole answer or a stream of chunk
dicts, plus the `x-triage-*` headers that explain the decision. Errors are raised, never rendered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from triage import telemetry
from triage.access.guard import Guard, limited
from triage.access.reserve import prompt_chars, worst_case
from triage.access.sensitive import Detector
from triage.accounting import Accountant, Record, content_of, usage_from
from triage.cache import OFF, Lookup, ResponseCache
from triage.classify import TASKS, Classification, Classifier
from triage.config.auth import KeySpec
from triage.config.routes import CacheSettings
from triage.config.schema import Config
from triage.engine.base import Call, CallKind, Native, Relayed
from triage.engine.runner import CANCELLED, Engine
from triage.errors import BadRequest, TriageError, error_kind, http_status
from triage.metering import Usage, format_usd
from triage.metrics import Metrics
from triage.normalize import normalize_reply
from triage.policy import Planner, RoutePlan, is_alias, reaches, restrict, tier_of
from triage.protocol import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    EMBEDDING_FIELDS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    Request,
    check_caps,
    declared,
    forwarded,
)
from triage.relay import relay
from triage.state.limits import Reservation

FIELDS = {"chat": CHAT_FIELDS, "completion": COMPLETION_FIELDS, "embedding": EMBEDDING_FIELDS}


@dataclass(frozen=True, init=False)
class Meta:
    request_id: str
    forced_task: str | None = None
    authorization: str | None = None
    prefer: str | None = None  # a deployment to use first while healthy (RoutePlan.prefer)
    trace: tuple[str, str | None] | None = None  # the caller's traceparent and tracestate

    def __init__(  # the fields in order: what dataclass's __init__ would take
        self,
        request_id: str,
        forced_task: str | None = None,
        authorization: str | None = None,
        prefer: str | None = None,
        trace: tuple[str, str | None] | None = None,
    ) -> None:
        # One dict set at once, as LedgerRow does: a frozen dataclass's own __init__ calls
        # object.__setattr__ once a field (~0.6 us of every request).
        values = {
            "request_id": request_id,
            "forced_task": forced_task,
            "authorization": authorization,
            "prefer": prefer,
            "trace": trace,
        }
        object.__setattr__(self, "__dict__", values)


@dataclass
class Answer:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    native: dict[str, Any] | None = None  # the answer in the call's native format, if sent so


@dataclass
class StreamAnswer:
    """The stream as batches of chunks: each batch goes to the client as one write."""

    chunks: AsyncIterator[Relayed]
    headers: dict[str, str] = field(default_factory=dict)
    native: bool = False  # the batches hold native frames (engine.base.Batch.native)


class Service:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        classifier: Classifier,
        accountant: Accountant,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        *,
        guard: Guard | None = None,
        detector: Detector | None = None,
        cache: ResponseCache | None = None,
        tracing: telemetry.Tracing | None = None,
    ) -> None:
        self.config = config
        self.planner = Planner(config)
        self._classified: dict[tuple[str, str], Any] = {}
        self.guard = guard or Guard(config.auth)
        self.detector = detector
        self.engine = engine
        self.classifier = classifier
        self.accountant = accountant
        self.metrics = metrics
        self.clock = clock
        self.cache = cache or ResponseCache(CacheSettings(), None, metrics)
        self.tracing = tracing

    def plan(self, request: Request, meta: Meta) -> RoutePlan:
        if meta.forced_task is not None and meta.forced_task not in TASKS:
            raise BadRequest(
                f"unknown task `{meta.forced_task}` in x-triage-task; one of: {', '.join(TASKS)}",
                param="x-triage-task",
            )
        if not is_alias(self.config, request.model):
            return self.planner.for_group(request.model)
        if isinstance(request, EmbeddingRequest):  # not classified: one configured group
            group = self.config.triage.embedding_route
            if group is None:
                raise BadRequest(
                    f"`{request.model}` on /v1/embeddings needs `triage.embedding_route` (a model "
                    "group of embedding deployments) in the config; or name that group as `model`",
                    param="model",
                )
            return self.planner.for_group(group)
        classification = self._classify(request, meta)
        return self.planner.for_task(classification, forced=meta.forced_task is not None)

    def _classify(self, request: Request, meta: Meta) -> Classification:
        if meta.forced_task is not None:
            task = meta.forced_task
            probabilities = {t: 1.0 if t == task else 0.0 for t in TASKS}
            return Classification(
                task, probabilities, 1.0, tier_of(self.config, task), 0.0, "header"
            )
        started = time.perf_counter()
        if isinstance(request, ChatCompletionRequest):
            messages = request.messages
            has_tools = bool(request.tools)
            has_format = request.response_format is not None
            if len(messages) == 1:  # its content alone decides, whatever its role
                result = self.classifier.classify_single(
                    messages[0].content, has_tools=has_tools, has_response_format=has_format
                )
            else:  # each message's own field dict (role, content ...) read in place
                result = self.classifier.classify(
                    list(map(vars, messages)), has_tools=has_tools, has_response_format=has_format
                )
        elif isinstance(request, CompletionRequest) and isinstance(request.prompt, str):
            result = self.classifier.classify_text(request.prompt)
        else:
            result = self.classifier.classify_text("")
        self.metrics.classify_time(time.perf_counter() - started)
        key = (result.task, result.reason.split(":")[0])
        counter = self._classified.get(key)
        if counter is None:  # labels() costs more than inc(); tasks x rule kinds is small
            child = self.metrics.classifications.labels(*key)
            counter = self._classified[key] = self.metrics.tally.counter(child)
        counter.inc()
        return result

    def route(self, request: Request, meta: Meta, key: KeySpec | None) -> RoutePlan:
        """The plan, cut down to what `key` may reach; 403 for a model or task it may not use.
        A key limited to some tasks has its named-group requests classified too (on their
        content: the x-triage-task header cannot vouch for a group request)."""
        plan = self.plan(request, meta)
        task = plan.task
        if key is not None and key.tasks and task is None:
            task = self._classify(request, replace(meta, forced_task=None)).task
        self.guard.authorize(key, request.model, task)
        allowed = self.guard.allowed_groups(key)
        return plan if allowed is None else restrict(plan, allowed)

    async def decide(
        self,
        kind: CallKind,
        request: Request,
        meta: Meta,
        key: KeySpec | None,
        native: Native | None = None,
    ) -> tuple[RoutePlan, dict[str, Any]]:
        """The plan and the body that would go upstream, sensitive routing applied (a native
        body is scanned too: it may go upstream instead)."""
        plan = self.route(request, meta, key)
        if meta.prefer is not None:
            plan = replace(plan, prefer=meta.prefer)
        body = forwarded(request, FIELDS[kind])
        found = await self._sensitive(body if native is None else {**body, "": native.body})
        if found:
            plan = replace(plan, local_only=True, sensitive=found)
        elif key is not None and key.data_policy == "local_only":
            plan = replace(plan, local_only=True)
        return plan, body

    async def admit(
        self, kind: CallKind, request: Request, meta: Meta, chars: int, native: Native | None
    ) -> tuple[RoutePlan, KeySpec | None, dict[str, Any], Reservation | None]:
        """Authenticate, cap, plan, authorize, scan, and reserve the worst case against the
        key's limits: all before any upstream call."""
        key = self.guard.authenticate(meta.authorization)
        check_caps(self.config.server, request)
        plan, body = await self.decide(kind, request, meta, key, native)
        reservation = None
        self.engine.prefetch(plan)  # the shared store's refresh rides with the reserve
        if limited(key):
            assert key is not None
            tokens, cost = worst_case(
                request,
                chars,
                plan,
                self.engine.groups,
                lambda d, usage: self.accountant.cost_on(d, usage, 0.0),
                self.config.auth.reserve_output_tokens,
            )
            reservation = await self.guard.reserve(self.guard.ask(key, tokens, cost))
        return plan, key, body, reservation

    async def _sensitive(self, body: dict[str, Any]) -> tuple[str, ...]:
        """Which detectors fire on the body that would go upstream: every string in it,
        whatever its field (large bodies are scanned off the event loop)."""
        if self.detector is None:
            return ()
        findings = await self.detector.scan_body_async(body)
        if not findings:  # most requests: no generator built for an empty tuple
            return ()
        for finding in findings:
            self.metrics.sensitive.labels(finding.detector).inc()
        return tuple(f.detector for f in findings)

    async def handle(
        self, kind: CallKind, request: Request, meta: Meta, native: Native | None = None
    ) -> Answer | StreamAnswer:
        """`native`: the client's own body, for deployments that speak its format natively."""
        started, chars = self.clock(), prompt_chars(request)
        try:
            plan, key, body, reservation = await self.admit(kind, request, meta, chars, native)
        except TriageError as err:
            # Refused before routing (401/403/404/429): counted, never sent upstream.
            self.metrics.requests.labels(kind, "none", "none", "", "", str(http_status(err))).inc()
            self.metrics.errors.labels(kind, "", "", error_kind(err)).inc()
            raise
        stream = bool(declared(request, "stream"))
        native = native if native and reaches(self.engine.groups, plan, native.format) else None
        call = Call(kind, body, stream, chars, native)
        record = Record(
            endpoint=kind,
            request_id=meta.request_id,
            task=plan.task or "none",
            tier=plan.tier or "none",
            route_name=plan.route_name,
            status=200,
            started=started,
            finished=started,
            stream=stream,
            key_id=key.id if key else None,
            reservation=reservation,
        )
        self.metrics.requests_in_flight.inc()
        telemetry.begin(self.tracing, kind, request.model, record, meta.trace)
        # A native answer is not in the chat form the cache keeps and replays.
        lookup = OFF if native else await self.cache.lookup(kind, plan, key, body, stream)
        if lookup.hit is not None:
            return await self._cached(lookup, plan, record, request, key)
        if stream:
            answer = await self._stream(plan, call, request, record)
            answer.chunks = self.cache.recording(lookup, answer.chunks, record)
            answer.headers |= lookup.headers
            return answer
        try:
            reply, outcome = await self.engine.complete(plan, call, record.attempts)
        except TriageError as err:
            record.error = error_kind(err)
            await self._finish(record, http_status(err))
            raise
        except asyncio.CancelledError:  # the client went away (api/disconnect.py): 499
            await self._finish(record, CANCELLED)
            raise
        body = normalize_reply(kind, reply.body, outcome.deployment)
        record.outcome = outcome
        record.usage = usage_from(reply.body, estimate=lambda: _estimate(call, body))
        if key is not None and key.log_content:
            record.content = content_of(request, body)
        await self._finish(record, 200)
        await self.cache.store(lookup, body, record)
        return Answer(body, self._headers(plan, record, lookup.headers), reply.native)

    async def _cached(
        self, lookup: Lookup, plan: RoutePlan, record: Record, request: Request, key: KeySpec | None
    ) -> Answer | StreamAnswer:
        """A cache hit: no upstream call, $0, accounted like any answer."""
        assert lookup.hit is not None
        wants_usage = not isinstance(request, EmbeddingRequest) and request.wants_usage
        served = self.cache.serve(
            lookup.hit, record, record.stream and wants_usage, lambda: self._finish(record, 200)
        )
        headers = self._headers(plan, record) | lookup.headers
        if isinstance(served, dict):
            record.content = content_of(request, served) if key and key.log_content else None
            await self._finish(record, 200)
            return Answer(served, headers)
        return StreamAnswer(served, headers)

    async def _stream(
        self, plan: RoutePlan, call: Call, request: Request, record: Record
    ) -> StreamAnswer:
        try:
            start = await self.engine.stream(plan, call, record.attempts)
        except TriageError as err:
            record.error = error_kind(err)
            await self._finish(record, http_status(err))
            raise
        except asyncio.CancelledError:  # the client went away before the first chunk
            await self._finish(record, CANCELLED)
            raise
        record.outcome = start.outcome
        record.ttft = self.clock() - record.started
        wants_usage = not isinstance(request, EmbeddingRequest) and request.wants_usage
        finish = partial(self._finish, record)
        chunks = relay(start, record, wants_usage, call.prompt_chars // 4, finish)
        await anext(chunks)  # started: closing it now runs its cleanup, even if never read
        native = start.first.native is not None
        return StreamAnswer(chunks, self._headers(plan, record), native)

    async def _finish(self, record: Record, status: int) -> None:
        """Account for the request; returns once its ledger row is committed, so that nothing
        is acknowledged that a crash could lose."""
        record.status = status
        record.finished = self.clock()
        self.metrics.requests_in_flight.dec()
        committed = self.accountant.record(record)
        telemetry.end(record)
        tokens = record.usage.total_tokens if record.usage else 0
        await self.guard.settle(record.reservation, tokens, record.cost)
        if committed is not None:
            await committed

    def _headers(
        self, plan: RoutePlan, record: Record, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Triage's headers, then `extra`'s (which win), in one dict."""
        outcome = record.outcome
        headers = {
            "x-request-id": record.request_id,
            "x-triage-sensitive": "true" if plan.sensitive else "false",
        }
        if plan.task is not None:
            headers["x-triage-task"] = plan.task
            headers["x-triage-tier"] = plan.tier or ""
        if plan.classification is not None:
            headers["x-triage-confidence"] = f"{plan.classification.confidence:.3f}"
            headers["x-triage-reason"] = plan.classification.reason
        if outcome is not None:
            headers["x-triage-route"] = outcome.group
            headers["x-triage-deployment"] = outcome.deployment.id
            headers["x-triage-attempts"] = str(len(outcome.attempts))
            headers["x-triage-fallbacks"] = str(outcome.fallbacks)
        if not record.stream:
            headers["x-triage-cost-usd"] = format_usd(record.cost)
        if extra:
            headers.update(extra)
        return headers


def _estimate(call: Call, body: dict[str, Any]) -> tuple[int, int]:
    produced = sum(len(str(c.get("message", c.get("text", "")))) for c in body.get("choices", []))
    return call.prompt_chars // 4, produced // 4


__all__ = ["Answer", "Meta", "Service", "StreamAnswer", "Usage"]
