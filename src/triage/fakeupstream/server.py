"""FakeUpstream: the aiohttp application, its routes, and the per-request pipeline that records,
counts, applies latency and faults, then hands over to a protocol handler.

Faults only hit inference endpoints (POST chat/completions/embeddings/messages and Ollama's
chat/generate/embed); listing endpoints such as /v1/models or /health never fail, so a health
check cannot swallow a fault a test queued for a real request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from triage.fakeupstream import anthropic, ollama, openai_chat, openai_misc
from triage.fakeupstream.control import Control
from triage.fakeupstream.error_bodies import (
    ANTHROPIC,
    OLLAMA,
    OPENAI,
    BadRequest,
    error_response,
    fault_response,
)
from triage.fakeupstream.faults import FaultSource, model_fault
from triage.fakeupstream.settings import FakeSettings, Fault, header_overrides
from triage.fakeupstream.state import FakeStats, Journal, RecordedRequest
from triage.fakeupstream.streaming import Call, drop_connection, hang

Handler = Callable[[Call], Awaitable[web.StreamResponse]]
PlainAnswer = Callable[[web.Request, Any], web.Response]


def _explicit_stream(body: Mapping[str, Any]) -> bool:
    return body.get("stream") is True


def _ollama_stream(body: Mapping[str, Any]) -> bool:
    return body.get("stream", True) is not False  # Ollama streams unless told not to


def _never(body: Mapping[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class Route:
    path: str
    protocol: str
    handler: Handler
    streams: Callable[[Mapping[str, Any]], bool]


def inference_routes() -> list[Route]:
    openai_routes = [
        ("/chat/completions", openai_chat.chat_completions, _explicit_stream),
        ("/completions", openai_misc.completions, _explicit_stream),
        ("/embeddings", openai_misc.embeddings, _never),
    ]
    routes = [
        Route(prefix + path, OPENAI, handler, streams)
        for path, handler, streams in openai_routes
        for prefix in ("/v1", "")
    ]
    return routes + [
        Route("/v1/messages", ANTHROPIC, anthropic.messages, _explicit_stream),
        Route("/api/chat", OLLAMA, ollama.chat, _ollama_stream),
        Route("/api/generate", OLLAMA, ollama.generate_text, _ollama_stream),
        Route("/api/embed", OLLAMA, ollama.embed_texts, _never),
        Route("/api/embeddings", OLLAMA, ollama.legacy_embeddings, _never),
    ]


class FakeUpstream:
    """A fake LLM backend. All public methods are thread-safe."""

    def __init__(self, settings: FakeSettings | None = None) -> None:
        self._initial = settings or FakeSettings()
        self.settings = self._initial
        self._config_lock = threading.Lock()
        self._journal = Journal()
        self._faults = FaultSource(self._initial.fault_list(), self._initial.chaos_config())
        self._numbers = itertools.count(1)
        self._app = self._build_app()

    @property
    def requests(self) -> list[RecordedRequest]:
        """The live list of recorded requests (use recorded() from other threads)."""
        return self._journal.requests

    @property
    def stats(self) -> FakeStats:
        return self._journal.stats

    def app(self) -> web.Application:
        return self._app

    def recorded(self) -> list[RecordedRequest]:
        return self._journal.snapshot()

    def stats_dict(self) -> dict[str, int]:
        return self._journal.stats_dict()

    def clear_requests(self) -> int:
        return self._journal.clear()

    def configure(self, **changes: Any) -> FakeSettings:
        """Change settings (same names as FakeSettings). `faults` replaces the queue and
        `chaos` replaces chaos and restarts its RNG. Raises ValueError on bad input."""
        with self._config_lock:
            updated = self.settings.updated(changes)
            if "faults" in changes:
                self._faults.replace(updated.fault_list())
            if "chaos" in changes:
                self._faults.set_chaos(updated.chaos_config())
            self.settings = updated
            return updated

    def add_fault(self, fault: Fault | Mapping[str, Any] | None = None, **fields: Any) -> Fault:
        """Queue one fault, e.g. add_fault(kind="status", status=429, retry_after=1)."""
        parsed = Fault.parse(fault if fault is not None else fields)
        self._faults.add(parsed)
        return parsed

    def clear_faults(self) -> None:
        self._faults.replace([])

    def pending_faults(self) -> list[Fault]:
        return self._faults.pending()

    def reset(self) -> None:
        """Back to the constructor's settings, with no requests, faults or counts."""
        with self._config_lock:
            self.settings = self._initial
            self._faults.replace(self._initial.fault_list())
            self._faults.set_chaos(self._initial.chaos_config())
        self._journal.clear()
        self._journal.reset_stats()

    def config_dict(self) -> dict[str, Any]:
        out = self.settings.to_dict()
        out["faults"] = [f.to_dict() for f in self._faults.pending()]
        chaos = self._faults.chaos
        out["chaos"] = chaos.to_dict() if chaos is not None else None
        return out

    # -- the aiohttp side ---------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for route in inference_routes():
            app.router.add_post(route.path, self._inference_handler(route))
        for method, path, answer in self._plain_routes():
            app.router.add_route(method, path, self._plain_handler(answer))
        app.router.add_routes(Control(self).routes())
        # Last, so it only sees what nothing else matched: a gateway posting to a wrong URL
        # shows up in the recording and gets an OpenAI-shaped 404 instead of HTML.
        app.router.add_route("*", "/{tail:.*}", self._plain_handler(_unknown_path))
        return app

    def _plain_routes(self) -> list[tuple[str, str, PlainAnswer]]:
        def models(request: web.Request, body: Any) -> web.Response:
            return openai_misc.models_response(self.settings.models)

        def model(request: web.Request, body: Any) -> web.Response:
            return openai_misc.model_response(request.match_info["model"])

        def tags(request: web.Request, body: Any) -> web.Response:
            return ollama.tags_response(self.settings.models)

        def show(request: web.Request, body: Any) -> web.Response:
            name = body.get("model") if isinstance(body, dict) else None
            return ollama.show_response(name if isinstance(name, str) else "fake")

        return [
            ("GET", "/v1/models", models),
            ("GET", "/models", models),
            ("GET", "/v1/models/{model:.+}", model),
            ("GET", "/health", lambda r, b: web.json_response({"status": "ok"})),
            ("GET", "/api/tags", tags),
            ("GET", "/api/version", lambda r, b: ollama.version_response()),
            ("GET", "/api/ps", lambda r, b: ollama.ps_response()),
            ("POST", "/api/show", show),
            ("GET", "/", lambda r, b: web.Response(text="Ollama is running")),
        ]

    def _plain_handler(
        self, answer: PlainAnswer
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._journal.begin()
            body = await self._record(request)
            self._journal.end("completed")
            return answer(request, body)

        return handle

    def _inference_handler(
        self, route: Route
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, route)

        return handle

    async def _record(self, request: web.Request) -> Any:
        """Read, parse and (if enabled) record the request; return the parsed JSON body."""
        raw = await request.read() if request.body_exists else b""
        body: Any = None
        text: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                text = raw.decode("utf-8", "replace")
        settings = self.settings
        if settings.record_requests:
            entry = RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=body,
                text=text,
                time=time.time(),
            )
            self._journal.record(entry, settings.max_recorded)
        return body

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        started = time.perf_counter()
        self._journal.begin()
        call: Call | None = None
        outcome = "completed"
        try:
            call = await self._open_call(request, route, started)
            return await self._respond(call, route)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except ConnectionResetError:
            # The client vanished while we were writing: same outcome as a cancellation.
            outcome = "cancelled"
            return web.Response(status=499)
        except BadRequest as exc:
            return error_response(route.protocol, 400, str(exc))
        finally:
            self._journal.end("dropped" if call is not None and call.dropped else outcome)

    async def _open_call(self, request: web.Request, route: Route, started: float) -> Call:
        body = await self._record(request)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        try:
            overrides, header_fault = header_overrides(request.headers)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter")
        settings = self.settings
        if overrides:
            settings = dataclasses.replace(settings, **overrides)
        fault = header_fault or model_fault(model) or self._faults.pick(model, request.path)
        return Call(
            request=request,
            body=body,
            settings=settings,
            fault=fault,
            protocol=route.protocol,
            stream=route.streams(body),
            number=next(self._numbers),
            started=started,
        )

    async def _respond(self, call: Call, route: Route) -> web.StreamResponse:
        fault = call.fault
        delay = call.settings.latency_ms
        if fault is not None and fault.kind == "slow":
            delay += fault.latency_ms
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        call.responding = time.perf_counter()
        if fault is not None:
            self._journal.count_fault()
            early = await _pre_response_fault(call, fault)
            if early is not None:
                return early
        return await route.handler(call)


def _unknown_path(request: web.Request, body: Any) -> web.Response:
    protocol = OLLAMA if request.path.startswith("/api/") else OPENAI
    message = f"Unknown request URL: {request.method} {request.path}."
    return error_response(protocol, 404, message, code="unknown_url")


async def _pre_response_fault(call: Call, fault: Fault) -> web.StreamResponse | None:
    """Answer for faults that strike before any body is sent; None lets the handler run
    (slow, or a stream fault on a streamed request: send_stream applies those)."""
    kind = fault.kind
    if kind in ("status", "context_window", "content_policy"):
        return fault_response(call.protocol, fault)
    if kind == "hang":
        return await hang(call)
    if kind == "connection_reset":
        return drop_connection(call, reset=True)
    if kind == "cut_stream" and not call.stream:
        return drop_connection(call)
    if kind == "stream_error" and not call.stream:
        message = fault.message or "fake upstream error"
        return error_response(call.protocol, fault.status or 500, message)
    return None
