"""Traces: one span per request and a child span per upstream attempt, when
`telemetry.otlp_endpoint` is set.

This module imports no OpenTelemetry code: without an endpoint nothing is built and every hook
is a ContextVar read. The request being traced travels in a ContextVar, so the engine's lanes
(which know nothing of the service) open their attempt span under it and put its W3C
`traceparent` on the upstream call. A request that carries a valid `traceparent` has its span
made a child of the caller's, so the whole path (caller, Triage, upstream) is one trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from triage.config.telemetry import TelemetrySettings

if TYPE_CHECKING:
    from triage.accounting import Record


class RequestTrace(Protocol):
    record: Record

    def attempt(self, deployment: str, group: str, model: str) -> Any: ...
    def end(self, record: Record) -> None: ...


class Tracing(Protocol):
    def begin(
        self, kind: str, model: str, record: Record, parent: dict[str, str]
    ) -> RequestTrace: ...
    def close(self) -> None: ...


ACTIVE: ContextVar[RequestTrace | None] = ContextVar("triage_request_trace", default=None)


def begin(
    tracing: Tracing | None,
    kind: str,
    model: str,
    record: Record,
    caller: tuple[str, str | None] | None = None,
) -> None:
    """Open the request's span; the rest of this request (and its stream) runs under it. With
    the caller's W3C (`traceparent`, `tracestate`), it continues the caller's trace: a
    malformed one is ignored (a new trace starts), and a caller's "not sampled" is obeyed."""
    if tracing is not None:
        parent = {}
        if caller is not None:
            parent["traceparent"] = caller[0]
            if caller[1]:
                parent["tracestate"] = caller[1]
        ACTIVE.set(tracing.begin(kind, model, record, parent))


def end(record: Record) -> None:
    """Close the request's span with what `record` says happened (once)."""
    trace = ACTIVE.get()
    if trace is not None and trace.record is record:
        ACTIVE.set(None)
        trace.end(record)


@contextmanager
def attempt(deployment: str, group: str, model: str) -> Iterator[dict[str, str]]:
    """A child span around one upstream call; yields the headers that propagate it."""
    trace = ACTIVE.get()
    if trace is None:
        yield {}
        return
    with trace.attempt(deployment, group, model) as headers:
        yield headers


def build_tracing(settings: TelemetrySettings) -> Tracing | None:
    if settings.otlp_endpoint is None:
        return None
    from triage.telemetry.otel import OtelTracing  # only now: the SDK is an optional extra

    return OtelTracing(settings)


__all__ = ["ACTIVE", "RequestTrace", "Tracing", "attempt", "begin", "build_tracing", "end"]
