"""The Responses API: `POST /v1/responses` (JSON and SSE) and the stored responses
(`GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`, `DELETE /v1/responses/{id}`).

A Responses request is translated to a chat request (protocols/responses.py) and handed to the
same pipeline as `/v1/chat/completions`; its answer or stream is translated back. Plain Starlette
routes like api/chat.py, for the same reasons. Stored responses belong to the key that made
them: another key gets a 404, as for a response that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triage.api.callers import caller
from triage.api.deps import AppState, meta, parse, state
from triage.api.disconnect import gone, unless_gone
from triage.api.errors import validation_error
from triage.api.render import FastJSONResponse
from triage.api.sse import EventStream
from triage.api.sticky import Pin, Pins, conversation_keys, sticky_routes, usable
from triage.config.group_alias import resolve_model
from triage.config.schema import Config
from triage.errors import BadRequest, NotFound, TriageError
from triage.metrics import Metrics
from triage.protocol import ChatCompletionRequest
from triage.protocols.responses import Item, ResponsesRequest, to_chat
from triage.protocols.responses_output import Draft, from_chat, stored_input_items
from triage.protocols.responses_stream import Event, ResponseEvents
from triage.service import StreamAnswer
from triage.state.responses import ResponseStore, SqliteResponses, StoredResponse, history
from triage.wire import dumps, loads

STORE = "responses_store"
STICKY = "sticky_routes"


def responses_store(
    config: Config, wall_clock: Callable[[], float], metrics: Metrics | None = None
) -> ResponseStore:
    """The store for `config` (opened on first use): `responses.path`, or beside the ledger;
    on the shared state store when `state.backend` is redis."""
    settings = config.responses
    if config.state.backend == "redis" and config.state.url is not None:
        from triage.state.redis_responses import RedisResponses
        from triage.state.redis_wire import Wire

        def failed(operation: str, policy: str) -> None:
            if metrics is not None:
                metrics.store_failures.labels(operation, policy).inc()

        client = Wire(config.state.url.get_secret_value(), config.state.timeout)
        return RedisResponses(client, settings.store_ttl, on_failure=failed)
    path = settings.path or str(Path(config.triage.ledger.path).with_name("triage-responses.db"))
    return SqliteResponses(path, settings.store_ttl, wall_clock)


def _store(app: AppState) -> ResponseStore:
    store: ResponseStore = app.extras[STORE]
    return store


def _sticky(app: AppState) -> Pins:
    routes: Pins | None = app.extras.get(STICKY)
    if routes is None:
        routes = app.extras[STICKY] = sticky_routes(app.config, app.shared.metrics)
    return routes


async def create_response(request: Request) -> Response:
    try:
        body = await parse(request, ResponsesRequest)
    except ClientDisconnect:
        return gone()
    app = state(request)
    request_meta = meta(request)
    key = app.service.guard.authenticate(request_meta.authorization)
    owner = key.id if key is not None else ""
    prior, previous_pin = await _prior(app, body, owner)
    keys = conversation_keys(body, owner)
    pin = Pin.decode(previous_pin or await _sticky(app).find(keys))
    # Fixed client model names (Codex's) map through router_settings.model_group_alias; the
    # Response still names the model the client asked for.
    routed = _resolved(app.config, body)
    stuck = pin is not None and usable(app.config, routed, key, pin.group)
    chat = _chat_request(routed, prior, pin.group if pin and stuck else None)
    # The deployment that served the conversation goes first while it is healthy (only in
    # the group that holds it: a turn sent elsewhere picks as ever).
    request_meta = replace(request_meta, prefer=pin.deployment if pin else None)
    draft = Draft(
        body,
        created_at=int(app.shared.wall_clock()),
        stored=body.stores and app.config.responses.store,
    )
    answer = await unless_gone(request, app.service.handle("chat", chat, request_meta))
    if answer is None:
        return gone()
    served = _served(answer.headers)
    if served is not None:
        await _sticky(app).remember(keys, served.encode())
    hit = stuck or (pin is not None and pin.group == routed.model)  # a named group's deployment
    headers = {**answer.headers, "x-triage-sticky": "hit" if hit else "new"}
    save = _saver(app, draft, owner, served.encode() if served else None)
    if isinstance(answer, StreamAnswer):
        frames = _frames(answer, ResponseEvents(draft), save)
        return EventStream(frames, {**headers, "cache-control": "no-cache"}, answer.chunks)
    result = from_chat(draft, answer.body)
    await save(result)
    return FastJSONResponse(result, headers=headers)


def _resolved(config: Config, body: ResponsesRequest) -> ResponsesRequest:
    model = resolve_model(config, body.model)
    return body if model == body.model else body.model_copy(update={"model": model})


def _served(headers: dict[str, str]) -> Pin | None:
    """Where the turn was answered: what the conversation's later turns stick to."""
    route = headers.get("x-triage-route")
    return None if route is None else Pin(route, headers.get("x-triage-deployment"))


async def _prior(
    app: AppState, body: ResponsesRequest, owner: str
) -> tuple[list[Item], str | None]:
    """The stored conversation `previous_response_id` continues, and the pin (`Pin.encode`)
    of its last turn."""
    previous = body.previous_response_id
    if previous is None:
        return [], None
    if not app.config.responses.store:
        raise BadRequest(
            "previous_response_id needs stored responses, and this server has "
            "`responses.store: false`; send the whole conversation as `input` instead",
            param="previous_response_id",
        )
    found = await history(_store(app), previous, owner, app.config.server.max_messages)
    if found is None:
        raise BadRequest(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return found


def _chat_request(
    body: ResponsesRequest, prior: list[Item], group: str | None
) -> ChatCompletionRequest:
    """The chat request; sent to `group` instead of the alias when the conversation sticks."""
    chat = to_chat(body, prior)
    if group is not None:
        chat["model"] = group
    if not chat["messages"]:
        raise BadRequest("`input` is required (or `previous_response_id`)", param="input")
    try:
        return ChatCompletionRequest.model_validate(chat)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _saver(
    app: AppState, draft: Draft, owner: str, route: str | None
) -> Callable[[Item], Awaitable[None]]:
    """Stores the finished response (with this turn's input items) when it is to be kept."""
    items = stored_input_items(draft.request)
    previous = draft.request.previous_response_id

    async def save(response: Item) -> None:
        if draft.stored:
            stored = StoredResponse(draft.id, owner, previous, response, items, route)
            await _store(app).put(stored)

    return save


async def _frames(
    answer: StreamAnswer, events: ResponseEvents, save: Callable[[Item], Awaitable[None]]
) -> AsyncGenerator[bytes, None]:
    """The chat stream as Responses events; a failure after the start is `response.failed`."""
    chunks = answer.chunks
    try:
        yield _encode(events.start())
        try:
            async for batch in chunks:
                out: list[Event] = []
                for chunk in batch:
                    out += events.feed(chunk if isinstance(chunk, dict) else loads(chunk))
                if out:
                    yield _encode(out)
        except TriageError as err:
            yield _encode(events.fail(err))
            return
        closing = events.finish()
        if events.final is not None:
            await save(events.final)
        yield _encode(closing)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _encode(events: list[Event]) -> bytes:
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n"
        for event in events
    )


async def _find(request: Request) -> tuple[ResponseStore, str, StoredResponse]:
    key = caller(request).key
    owner = key.id if key is not None else ""
    response_id = str(request.path_params["response_id"])
    store = _store(state(request))
    stored = await store.get(response_id, owner)
    if stored is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return store, owner, stored


async def get_response(request: Request) -> Response:
    return FastJSONResponse((await _find(request))[2].response)


async def delete_response(request: Request) -> Response:
    store, owner, stored = await _find(request)
    await store.delete(stored.id, owner)
    return FastJSONResponse({"id": stored.id, "object": "response", "deleted": True})


async def list_input_items(request: Request) -> Response:
    items = (await _find(request))[2].input_items
    limit, order, after = _page_params(request)
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    body: dict[str, Any] = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else "",
        "last_id": page[-1]["id"] if page else "",
        "has_more": len(items) > limit,
    }
    return FastJSONResponse(body)


def _page_params(request: Request) -> tuple[int, str, str | None]:
    query = request.query_params
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise BadRequest("limit must be an integer from 1 to 100", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be `asc` or `desc`", param="order")
    return int(raw), order, query.get("after")


routes: list[BaseRoute] = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
