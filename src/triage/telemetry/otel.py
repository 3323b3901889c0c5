"""The OpenTelemetry implementation of triage.telemetry's hooks: an SDK tracer provider of our
own (never the process-wide global one), a batching OTLP/HTTP exporter, GenAI semantic-convention
attributes, and W3C trace context on the upstream calls.

Attributes come from the config and the request's record, never from client strings other than
the requested model name; prompt and completion text only from `record.content`, which exists
only for keys that opted in with `log_content`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from triage.accounting import Record
from triage.config.telemetry import TelemetrySettings

OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}


def traces_url(endpoint: str) -> str:
    """A bare collector address gets the OTLP/HTTP traces path, as OTEL_EXPORTER_OTLP_ENDPOINT."""
    return endpoint.rstrip("/") + "/v1/traces" if urlparse(endpoint).path in ("", "/") else endpoint


class OtelTracing:
    def __init__(self, settings: TelemetrySettings, exporter: SpanExporter | None = None) -> None:
        assert settings.otlp_endpoint is not None
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        exporter = exporter or OTLPSpanExporter(
            endpoint=traces_url(settings.otlp_endpoint), timeout=settings.export_timeout
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("triage")
        self.propagator = TraceContextTextMapPropagator()

    def begin(self, kind: str, model: str, record: Record, parent: dict[str, str]) -> OtelRequest:
        """The request's span: a child of the caller's when `parent` holds a valid W3C
        `traceparent` (the propagator ignores a malformed one, and then a trace starts here)."""
        operation = OPERATIONS.get(kind, kind)
        span = self.tracer.start_span(
            f"{operation} {model}",
            context=self.propagator.extract(parent) if parent else None,
            kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": operation, "gen_ai.request.model": model},
        )
        return OtelRequest(self, span, record)

    def close(self) -> None:
        self.provider.shutdown()  # flushes what is still queued


class OtelRequest:
    def __init__(self, tracing: OtelTracing, span: Span, record: Record) -> None:
        self.tracing = tracing
        self.span = span
        self.record = record
        self.context = set_span_in_context(span)

    @contextmanager
    def attempt(self, deployment: str, group: str, model: str) -> Iterator[dict[str, str]]:
        attributes = {
            "gen_ai.request.model": model,
            "triage.route": group,
            "triage.deployment": deployment,
        }
        with self.tracing.tracer.start_as_current_span(
            f"upstream {deployment}",
            context=self.context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            set_status_on_exception=True,
        ) as span:
            headers: dict[str, str] = {}
            self.tracing.propagator.inject(headers, context=set_span_in_context(span))
            yield headers

    def end(self, record: Record) -> None:
        span = self.span
        span.set_attributes(_attributes(record))
        if record.status >= 400:
            span.set_status(StatusCode.ERROR, record.error_kind or str(record.status))
        span.end(end_time=time.time_ns())


def _attributes(record: Record) -> dict[str, Any]:
    group, deployment = record.where()
    out: dict[str, Any] = {
        "triage.task": record.task,
        "triage.route": group,
        "triage.route_name": record.route_name,
        "triage.deployment": deployment,
        "triage.attempts": len(record.outcome.attempts if record.outcome else record.attempts),
        "triage.cost_usd": float(record.cost),
        "triage.stream": record.stream,
        "http.response.status_code": record.status,
    }
    if record.outcome is not None:
        out["gen_ai.response.model"] = record.outcome.deployment.litellm_params.model
    if record.usage is not None:
        out["gen_ai.usage.input_tokens"] = record.usage.prompt_tokens
        out["gen_ai.usage.output_tokens"] = record.usage.completion_tokens
    if record.error_kind:
        out["error.type"] = record.error_kind
    if record.content is not None:  # only for keys with log_content
        out["gen_ai.prompt"] = record.content.get("prompt", "")
        out["gen_ai.completion"] = record.content.get("completion", "")
    return out
