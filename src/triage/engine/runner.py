"""The runner: how a planned request reaches a deployment, whichever lane carries it.

It walks the plan's groups in order. Inside a group it picks a deployment (selection.py), retries
retryable failures with exponential backoff and jitter (honouring `Retry-After`, moving to a sibling
deployment at once when there is one), and feeds every result to the circuit breaker in the store.
A group that gives up hands over to the next group on the plan, or to the context-window /
content-policy fallbacks for those failure kinds. Every attempt counts against one attempt budget
and one deadline, so retries and fallbacks never multiply. Retries live here and nowhere else:
transports make exactly one call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from triage.config.schema import Config, Deployment
from triage.engine.base import AttemptRecord, Batch, Call, Outcome, Reply, Timeouts, Transport
from triage.engine.base import UpstreamStream as _Stream
from triage.engine.deadline import Deadlines
from triage.engine.drain import Drain
from triage.engine.facts import Facts
from triage.engine.relaying import Relay
from triage.engine.selection import choose
from triage.errors import (
    AllAttemptsFailed,
    Attempt,
    BadRequest,
    ContentPolicyViolation,
    ContextWindowExceeded,
    NoHealthyDeployment,
    PermissionDenied,
    TriageError,
    UpstreamError,
    UpstreamTimeout,
)
from triage.identity import ByIdentity
from triage.policy import RoutePlan
from triage.state import Store

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
CHARS_PER_TOKEN = 4  # conservative prompt-size estimate for the context-window pre-check
MAX_BACKOFF = 8.0
CANCELLED = 499  # the caller went away while an attempt was in flight (nginx's status)
REACH_CACHE = 256  # plans whose reachable deployments are kept


@dataclass
class StreamStart:
    """A stream whose first chunks have arrived: from here on, no fallback is possible."""

    first: Batch
    rest: Relay  # closing it gives the deployment's slot back, even if never iterated
    outcome: Outcome


@dataclass
class _Run(Generic[T]):
    plan: RoutePlan
    call: Call
    deadline_at: float
    attempts: list[AttemptRecord]
    attempt: Callable[[Deployment, Timeouts], Awaitable[T]]


class Engine:
    def __init__(
        self,
        config: Config,
        lanes: Callable[[Deployment], Transport],
        store: Store,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        context_window: Callable[[Deployment], int | None] = lambda d: None,
        on_cooldown: Callable[[str], None] = lambda deployment_id: None,
        drain: Drain | None = None,
    ) -> None:
        self.config = config
        self.lane = lanes
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.context_window = context_window
        self.on_cooldown = on_cooldown
        self.drain = drain
        self.groups: Mapping[str, list[Deployment]] = config.groups
        self._reach: dict[tuple[object, ...], tuple[object, object, tuple[str, ...]]] = {}
        self._deadlines = Deadlines()  # asyncio.timeout's semantics, one loop timer for all
        self._facts = ByIdentity(partial(Facts, config=config, context_window=context_window))
        self._strategy = config.router_settings.routing_strategy

    async def complete(
        self, plan: RoutePlan, call: Call, attempts: list[AttemptRecord] | None = None
    ) -> tuple[Reply, Outcome]:
        """The whole answer. `attempts`, when given, is filled as the attempts happen, so that
        a caller whose request failed or was cancelled still knows where it went."""

        async def attempt(deployment: Deployment, timeouts: Timeouts) -> Reply:
            return await self.lane(deployment).send(deployment, call, timeouts)

        return await self._run(plan, call, attempt, attempts=attempts)

    async def stream(
        self, plan: RoutePlan, call: Call, attempts: list[AttemptRecord] | None = None
    ) -> StreamStart:
        async def attempt(deployment: Deployment, timeouts: Timeouts) -> tuple[_Stream, Batch]:
            upstream = await self.lane(deployment).open_stream(deployment, call, timeouts)
            try:
                if timeouts.first_token is None:  # the attempt's own deadline bounds it
                    first = await anext(aiter(upstream))
                else:
                    with self._deadlines.within(timeouts.first_token):
                        first = await anext(aiter(upstream))
                # A first chunk that does not decode is a failed attempt (a fallback may still
                # answer); a later one is a failure mid-stream.
                first.chunk(0)
            except StopAsyncIteration:
                await upstream.aclose()
                raise UpstreamError("upstream closed the stream before any data") from None
            except TimeoutError:
                await upstream.aclose()
                raise UpstreamTimeout(f"no first token within {timeouts.first_token:g}s") from None
            except BaseException:
                await upstream.aclose()
                raise
            return upstream, first

        deadline = self.clock() + plan.deadline
        (upstream, first), outcome = await self._run(
            plan, call, attempt, release=False, attempts=attempts
        )
        outcome.ttft = outcome.upstream_seconds
        params = outcome.deployment.litellm_params
        total = params.stream_timeout or params.timeout or plan.timeout
        idle = outcome.deployment.model_info.stream_idle_timeout
        idle = idle or self.config.triage.stream_idle_timeout
        rest = Relay(
            upstream,
            outcome.deployment.id,
            self.store,
            self.clock,
            finish_by=min(deadline, self.clock() + total),
            idle=idle,
            drain=self.drain,  # a shutdown ends it at the drain deadline
        )
        return StreamStart(first=first, rest=rest, outcome=outcome)

    async def _run(
        self,
        plan: RoutePlan,
        call: Call,
        attempt: Callable[[Deployment, Timeouts], Awaitable[T]],
        *,
        release: bool = True,
        attempts: list[AttemptRecord] | None = None,
    ) -> tuple[T, Outcome]:
        trail = [] if attempts is None else attempts
        run = _Run(plan, call, self.clock() + plan.deadline, trail, attempt)
        if plan.local_only and not any(self._deployments(plan, g) for g in plan.groups):
            raise PermissionDenied(
                "this request may only go to local deployments (sensitive data or the key's "
                "data policy) and none is on its route",
                code="local_only",
            )
        await self.store.sync(self._reachable(plan), self.clock())
        queue = deque(plan.groups)
        visited: set[str] = set()
        last: TriageError | None = None
        while queue:
            group = queue.popleft()
            if group in visited:
                continue
            visited.add(group)
            try:
                result = await self._try_group(run, group, release=release)
                # One attempt in the trail is the one that just succeeded: nothing failed.
                if len(trail) != 1 and any(not a.ok for a in trail):
                    await self.store.flush()  # other replicas see the failures next request
                return result
            except TriageError as err:
                await self.store.flush()
                last = err
                if type(err) is BadRequest or self._exhausted(run):
                    break
                if isinstance(err, ContextWindowExceeded):
                    queue = deque(plan.context_window_fallbacks.get(group, ()))
                elif isinstance(err, ContentPolicyViolation):
                    queue = deque(plan.content_policy_fallbacks.get(group, ()))
        assert last is not None
        raise self._final_error(run, last)

    def prefetch(self, plan: RoutePlan) -> None:
        """Let a shared store start this plan's refresh early (see Store.prefetch)."""
        self.store.prefetch(self._reachable(plan))

    def _reachable(self, plan: RoutePlan) -> tuple[str, ...]:
        """Every deployment the plan may reach, fallbacks included (what a shared store
        refreshes before the request). Worked out once per route: an `auto` request's plan is
        a copy of its route's, sharing the route's fallback maps (held here, compared by
        identity)."""
        cw, cp = plan.context_window_fallbacks, plan.content_policy_fallbacks
        key = (plan.groups, plan.local_only, id(cw), id(cp))
        known = self._reach.get(key)
        if known is not None and known[0] is cw and known[1] is cp:
            return known[2]
        groups = list(plan.groups)
        for fallbacks in (cw, cp):
            groups += [g for source in plan.groups for g in fallbacks.get(source, ())]
        ids = tuple(d.id for g in dict.fromkeys(groups) for d in self._deployments(plan, g))
        if len(self._reach) >= REACH_CACHE:
            self._reach.clear()  # routes are few; many keys means plans built per request
        self._reach[key] = (cw, cp, ids)
        return ids

    def _deployments(self, plan: RoutePlan, group: str) -> list[Deployment]:
        deployments = self.groups.get(group, [])
        if plan.local_only:
            return [d for d in deployments if d.model_info.local]
        return deployments

    def _exhausted(self, run: _Run[T]) -> bool:
        return len(run.attempts) >= run.plan.max_attempts or self.clock() >= run.deadline_at

    def _final_error(self, run: _Run[T], last: TriageError) -> TriageError:
        if len(run.attempts) <= 1:
            return last
        summary = [Attempt(a.group, a.deployment, a.error, a.status) for a in run.attempts]
        return AllAttemptsFailed(summary, last)

    async def _try_group(self, run: _Run[T], group: str, *, release: bool) -> tuple[T, Outcome]:
        deployments = self._deployments(run.plan, group)
        if not deployments:
            raise PermissionDenied(f"model group `{group}` has no local deployment")
        avoid: set[str] = set()
        retries = 0
        while True:
            if self._exhausted(run):
                raise UpstreamTimeout("the request's deadline or attempt budget ran out")
            deployment = self._pick(run, deployments, avoid, group)
            try:
                return await self._attempt(run, group, deployment, release=release)
            except TriageError as err:
                avoid.add(deployment.id)
                rs = self.config.router_settings
                allowed = rs.retry_policy.for_kind(err.kind, rs.num_retries)
                if not err.retryable or retries >= allowed:
                    raise
                retries += 1
                await self._backoff(run, err, retries, sibling=len(avoid) < len(deployments))

    def _pick(
        self, run: _Run[T], deployments: list[Deployment], avoid: set[str], group: str
    ) -> Deployment:
        now = self.clock()
        deployment = choose(
            deployments,
            self.store,
            self._strategy,
            self.rng,
            now=now,
            stream=run.call.stream,
            avoid=avoid,
            prefer=run.plan.prefer,
        )
        if deployment is None:
            wait = min(self.store.cooldown_remaining(d.id, now) for d in deployments)
            raise NoHealthyDeployment(
                f"every deployment of model group `{group}` is cooling down",
                retry_after=max(1.0, wait),
            )
        return deployment

    async def _attempt(
        self, run: _Run[T], group: str, deployment: Deployment, *, release: bool
    ) -> tuple[T, Outcome]:
        facts = self._facts.of(deployment)
        did, started = facts.id, self.clock()
        try:
            if facts.context_limit:  # most deployments know none: no call for them
                self._check_context(run.call, deployment, facts.context_limit)
            timeouts = self._timeouts(run, facts, started)
            with self._deadlines.within(timeouts.total):
                result = await run.attempt(deployment, timeouts)
        except TimeoutError:
            err: TriageError = UpstreamTimeout(f"no answer within {timeouts.total:g}s")
            self._failed(run, group, deployment, err, started)
            raise err from None
        except TriageError as exc:
            self._failed(run, group, deployment, exc, started)
            raise
        except asyncio.CancelledError:
            self.store.release(did)
            self.store.record_failure(did, self.clock(), trips=False)
            seconds = self.clock() - started
            run.attempts.append(
                AttemptRecord(group, did, False, "cancelled", CANCELLED, "", seconds)
            )
            raise
        now = self.clock()
        elapsed = now - started
        run.attempts.append(AttemptRecord(group, did, True, seconds=elapsed))
        stream = run.call.stream
        self.store.record_success(
            did,
            now,
            latency=None if stream else elapsed,
            ttft=elapsed if stream else None,
        )
        if release:
            self.store.release(did)
        outcome = Outcome(group, deployment, run.attempts, upstream_seconds=elapsed)
        return result, outcome

    def _failed(
        self, run: _Run[T], group: str, deployment: Deployment, err: TriageError, started: float
    ) -> None:
        now = self.clock()
        self.store.release(deployment.id)
        # Client-caused failures say nothing about the deployment's health.
        self.store.record_failure(deployment.id, now, trips=err.retryable)
        if err.retryable and self.store.cooldown_remaining(deployment.id, now) > 0:
            self.on_cooldown(deployment.id)
        run.attempts.append(
            AttemptRecord(
                group,
                deployment.id,
                False,
                error=err.message,
                status=err.status,
                kind=err.kind,
                seconds=now - started,
            )
        )

    def _check_context(self, call: Call, deployment: Deployment, limit: int | None) -> None:
        if limit and call.prompt_chars // CHARS_PER_TOKEN > limit:
            raise ContextWindowExceeded(
                f"the prompt (~{call.prompt_chars // CHARS_PER_TOKEN} tokens) does not fit "
                f"`{deployment.model_name}`'s context window of {limit} tokens"
            )

    def _timeouts(self, run: _Run[T], facts: Facts, now: float) -> Timeouts:
        remaining = max(0.001, run.deadline_at - now)
        plan = run.plan
        total = facts.timeout or plan.timeout
        if run.call.stream:
            total = facts.stream_timeout or total
        first = facts.first_token or plan.first_token_timeout
        connect = facts.connect
        return Timeouts(
            connect=min(connect, remaining),
            first_token=min(first, remaining) if first else None,
            total=min(total, remaining),
        )

    async def _backoff(
        self, run: _Run[T], err: TriageError, retries: int, *, sibling: bool
    ) -> None:
        if sibling and err.retry_after is None:
            return  # another deployment can take it right away
        base = max(self.config.router_settings.retry_after, 0.05) * 2 ** (retries - 1)
        wait = min(MAX_BACKOFF, base * (0.5 + self.rng.random() / 2))
        if err.retry_after is not None and not sibling:
            wait = max(wait, err.retry_after)
        remaining = run.deadline_at - self.clock()
        if wait >= remaining:
            raise err
        await self.sleep(wait)
