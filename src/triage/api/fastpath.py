"""The hot OpenAI routes served straight from the app's outermost layer.

Every request through FastAPI passes about ten ASGI layers before its handler runs (FastAPI's
and Starlette's `__call__`, the server-error, telemetry and body-limit middlewares, our Gate,
the exception middleware, an exit stack, the router trying each route, the route, and the
handler's own exception wrapper), each a coroutine and most a `send` wrapper of their own.
`TriageApp` serves a POST to a hot path (`HOT_PATHS`: the inference endpoints) itself: the
Gate's refusals and runtime pin, the route's handler, and the app's own exception handlers
applied as those layers apply them, so every answer, error and log line is the one the full
stack gives:

- an exception with a registered handler (TriageError, RequestValidationError, HTTPException) is
  rendered by it, unless the response has started: then a RuntimeError, as Starlette raises;
- any other exception gets the app's 500 handler (which logs it) and is raised on to the server
  (uvicorn logs it; an ASGI test client raises it), as Starlette's ServerErrorMiddleware does.

The fast path is worked out at the first request and stays off, leaving everything to the full
stack, wherever it could answer differently: any middleware besides the Gate (CORS, when
`server.cors_origins` is set, adds headers this path would not), debug mode, a root path, a
body-size cap of FastAPI's, a handler keyed by status code, or a path whose first matching
route is not a plain Starlette `Route` with an async handler (a FastAPI route solves
dependencies). Other methods on a hot path (405 with `Allow`) take the full stack too.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import FastAPI
from starlette._utils import is_async_callable
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, request_response
from starlette.types import Message, Receive, Scope, Send

from triage.api.gate import Gate, refuse

# The code of the ASGI app `request_response` wraps every handler in (whatever the handler):
# how a route is known to serve its handler as Starlette's routing alone would.
_REQUEST_RESPONSE = request_response(Response).__code__
HOT_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"}
)

Handler = Callable[[Request, Exception], Awaitable[Response]]


class TriageApp(FastAPI):
    """FastAPI, with a POST to one of `hot_paths` dispatched before its middleware stack.
    Set `hot_paths` (empty: off) before the app serves its first request."""

    hot_paths: frozenset[str] = HOT_PATHS
    _fast: FastPath | None = None
    _worked_out = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._worked_out and scope["type"] == "http":
            if self.middleware_stack is None:  # built as Starlette would: no middleware after
                self.middleware_stack = self.build_middleware_stack()
            self._fast = FastPath.of(self)
            self._worked_out = True
        fast = self._fast
        if fast is not None and scope["type"] == "http" and scope["method"] == "POST":
            route = fast.routes.get(scope["path"])
            # A server's root path (uvicorn --root-path) changes what the router matches.
            if route is not None and not scope.get("root_path"):
                scope["app"] = self
                await fast.serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    @property
    def serves_fast(self) -> bool:
        """Whether the hot paths skip the middleware stack (known once a request came in)."""
        return self._fast is not None


class _Sent:
    """`send`, remembering whether the response has started."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class FastPath:
    """The hot routes with the Gate and the app's exception handlers (see the module doc)."""

    def __init__(
        self,
        gate: Gate,
        routes: dict[str, Route],
        handlers: dict[type[Exception], Handler],
        fallback: Handler,
    ) -> None:
        self.gate = gate
        self.routes = routes
        self.handlers = handlers
        self.fallback = fallback  # the app's 500 handler

    @classmethod
    def of(cls, app: TriageApp) -> FastPath | None:
        """The fast path for `app` as it is now configured; None where it must stay off."""
        middleware = app.user_middleware
        factory: object = middleware[0].cls if len(middleware) == 1 else None
        plain = (
            factory is Gate
            and not (app.debug or app.root_path or app.max_body_size is not None)
            and app.router.middleware_stack == app.router.app
        )
        handlers = _handlers(app.exception_handlers) if plain else None
        routes = {path: _route(app.router.routes, path) for path in app.hot_paths}
        if handlers is None or not routes or not all(routes.values()):
            return None
        entry = middleware[0]
        gate = cast(Gate, entry.cls(app.router, *entry.args, **entry.kwargs))
        served = {path: route for path, route in routes.items() if route is not None}
        return cls(gate, served, *handlers)

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        sent = _Sent(send)
        try:
            refusal = self.gate.refusal(scope)
            if refusal is not None:
                await refuse(sent, refusal)
                return
            pins = self.gate.pins
            epoch = pins.enter()
            try:
                await self._handle(route, scope, receive, sent)
            finally:
                pins.leave(epoch)
        except Exception as exc:
            response = await self.fallback(Request(scope), exc)
            if not sent.started:
                await response(scope, receive, send)
            raise

    async def _handle(self, route: Route, scope: Scope, receive: Receive, sent: _Sent) -> None:
        scope["router"] = self.gate.app  # what the router would have put on the scope
        scope["route"] = route
        scope["endpoint"] = endpoint = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, sent)
        try:
            response: Response = await endpoint(request)
            await response(scope, receive, sent)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if sent.started:
                raise RuntimeError(
                    "Caught handled exception, but response already started."
                ) from exc
            answer = await handler(request, exc)
            await answer(scope, receive, sent)
            exc.__traceback__ = None  # as Starlette: a reused instance keeps no traceback

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None


def _handlers(
    registered: dict[Any, Callable[..., Any]],
) -> tuple[dict[type[Exception], Handler], Handler] | None:
    """The app's handlers by exception class, and its 500 handler; None if the full stack
    could not be reproduced (a handler keyed by status code, one that is not async, no 500)."""
    handlers: dict[type[Exception], Handler] = {}
    fallback: Handler | None = None
    for key, handler in registered.items():
        if not is_async_callable(handler):
            return None
        if key is Exception or key == 500:
            fallback = handler
        elif isinstance(key, type) and issubclass(key, Exception):
            handlers[key] = handler
        else:
            return None
    return None if fallback is None else (handlers, fallback)


def _route(routes: list[BaseRoute], path: str) -> Route | None:
    """The route the router would give a POST to `path`, if it is a plain Starlette route
    with an async handler and no path parameters; None otherwise."""
    probe: dict[str, Any] = {"type": "http", "method": "POST", "path": path, "headers": []}
    for route in routes:
        match, child = route.matches(probe)
        if match is Match.NONE:
            continue
        if match is not Match.FULL or type(route) is not Route or child.get("path_params"):
            return None
        assert isinstance(route, Route)
        # Only a coroutine function served by `request_response` as Starlette wraps it: no
        # route middleware or body cap of its own, not a class endpoint (an ASGI app).
        endpoint = route.endpoint
        wrapped = getattr(route.app, "__code__", None) is _REQUEST_RESPONSE
        return route if wrapped and inspect.iscoroutinefunction(endpoint) else None
    return None
