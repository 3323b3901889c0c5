"""The `/_fake/*` control and introspection endpoints (never recorded, never faulted).

GET/DELETE /_fake/requests, GET/POST /_fake/config, POST/DELETE /_fake/faults,
GET /_fake/stats and POST /_fake/reset — the HTTP twin of FakeUpstream's Python methods, for
a fake running in another process.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from triage.fakeupstream.settings import Fault

if TYPE_CHECKING:
    from triage.fakeupstream.server import FakeUpstream


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be JSON"}), content_type="application/json"
        ) from None


class Control:
    """Handlers for the control endpoints of one FakeUpstream."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream

    async def get_requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.to_dict() for r in self.upstream.recorded()])

    async def clear_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"cleared": self.upstream.clear_requests()})

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.upstream.config_dict())

    async def set_config(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _bad("config must be a JSON object")
        try:
            self.upstream.configure(**body)
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        return web.json_response(self.upstream.config_dict())

    async def add_faults(self, request: web.Request) -> web.Response:
        """Append one fault object, or a list of them, to the queue (all or nothing)."""
        body = await _json_body(request)
        items = body if isinstance(body, list) else [body]
        if not all(isinstance(item, dict) for item in items):
            return _bad("a fault must be a JSON object")
        try:
            faults = [Fault.parse(item) for item in items]
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        for fault in faults:
            self.upstream.add_fault(fault)
        pending = [f.to_dict() for f in self.upstream.pending_faults()]
        return web.json_response({"faults": pending})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.upstream.clear_faults()
        return web.json_response({"faults": []})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.upstream.stats_dict())

    async def reset(self, request: web.Request) -> web.Response:
        self.upstream.reset()
        return web.json_response(self.upstream.config_dict())

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_fake/requests", self.get_requests),
            web.delete("/_fake/requests", self.clear_requests),
            web.get("/_fake/config", self.get_config),
            web.post("/_fake/config", self.set_config),
            web.post("/_fake/faults", self.add_faults),
            web.delete("/_fake/faults", self.clear_faults),
            web.get("/_fake/stats", self.get_stats),
            web.post("/_fake/reset", self.reset),
        ]
