"""What handlers need from the app, reached through the request (no globals)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from triage.api.errors import validation_error
from triage.api.reloading import Retirement, reload_problems, show_config
from triage.classify import Classifier
from triage.config import ConfigError, summary
from triage.config.schema import Config
from triage.errors import BadRequest, PayloadTooLarge
from triage.runtime import Runtime, Shared, build_runtime
from triage.service import Meta, Service

log = logging.getLogger("triage.api")

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 100
# A `\\u` escape of a UTF-16 surrogate: a cheap hint that a body may hold an unpaired one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class AppState:
    """The app's mutable state: the current runtime (swapped whole on reload) and what
    outlives it."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        shared: Shared,
        config_source: Callable[[], Config] | None,
        extras: dict[str, Any],
        bind_host: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.shared = shared
        self.config_source = config_source
        self.extras = extras
        self.bind_host = bind_host or runtime.config.server.host
        self.started_with_keys = runtime.config.auth.enabled
        # The gate (api/gate.py) counts every request in and out of the runtime serving it.
        self.retirement = Retirement()

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def service(self) -> Service:
        return self.runtime.service

    def reload(self) -> Runtime:
        """Build a runtime from the re-read config and swap it in; raise and keep the old one
        if the new config is invalid, unsafe, or changes a setting that needs a restart."""
        if self.config_source is None:
            raise BadRequest("this server was not started from a config file: nothing to reload")
        try:
            config = self.config_source()
        except ConfigError as exc:
            raise InvalidConfig(exc.problems) from None
        except (OSError, ValueError) as exc:
            raise InvalidConfig([str(exc)]) from None
        problems = reload_problems(
            self.config,
            config,
            started_with_keys=self.started_with_keys,
            bind_host=self.bind_host,
        )
        if problems:
            raise ReloadRefused(problems)
        try:
            runtime = build_runtime(config, self.shared, classifier=self._same_classifier(config))
        except (OSError, ValueError) as exc:
            raise InvalidConfig([str(exc)]) from None
        old, self.runtime = self.runtime, runtime
        self.retirement.retire(old)
        show_config(self.shared.metrics, config)
        log.warning("config reloaded: %s", summary(config))
        return runtime

    def _same_classifier(self, config: Config) -> Classifier | None:
        """The serving classifier when the new config would load the same shipped one (it is
        the largest part of a runtime); weights from a file are read again (they may have been
        retrained in place)."""
        old, new = self.config.triage, config.triage
        shipped = old.classifier_path is None and new.classifier_path is None
        return self.service.classifier if shipped and old.examples == new.examples else None

    def watch_sighup(self) -> None:
        """SIGHUP reloads like POST /admin/reload (only where signals can be installed)."""
        if self.config_source is None:
            return
        # Not possible off the main thread (tests) or where there are no signals.
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        try:
            self.reload()
        except (InvalidConfig, ReloadRefused) as exc:
            log.error("config reload refused: %s", "; ".join(exc.problems))

    async def close(self) -> None:
        await self.retirement.close()
        await self.runtime.lanes.close()
        if self.shared.cache is not None:
            await self.shared.cache.close()
        if self.shared.tracing is not None:
            self.shared.tracing.close()  # flushes the spans still queued
        if self.shared.limits is not None:
            await self.shared.store.flush()  # breaker writes (Redis: on the limits' connection)
            await self.shared.limits.flush()  # Redis: the settles written behind
            self.shared.limits.close()  # the SQLite file or the store connection


class ReloadRefused(BadRequest):
    default_code = "reload_refused"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("reload refused; the old config keeps serving: " + "; ".join(problems))
        self.problems = problems


class InvalidConfig(BadRequest):
    default_code = "invalid_config"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "the new config is invalid; the old one keeps serving: " + "; ".join(problems)
        )
        self.problems = problems


def state(request: Request) -> AppState:
    """`request.app.state.triage`, read by item: as an attribute it is found only after
    Python has built and dropped an AttributeError (Starlette's State keeps its values in a
    dict behind `__getattr__`), about 0.8 µs, twice a request."""
    value: AppState = request.app.state["triage"]
    return value


async def parse(request: Request, model: type[M]) -> M:
    limit = state(request).config.server.max_body_bytes
    declared = _content_length(request)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    data = decode_json(await _read_body(request, limit))
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        # The model's own validator, as `model_validate` calls it without its keyword
        # checks and the frame between (a fifth of validating the bench's request).
        found: M = model.__pydantic_validator__.validate_python(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    return found


def _content_length(request: Request) -> str | None:
    """The first content-length header, as `request.headers.get` finds it, without building
    the headers object (1.2 µs) for one name."""
    for name, value in request.scope["headers"]:
        if name == b"content-length":
            found: str = value.decode("latin-1")
            return found
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` (a chunked body declares no length).
    Read from the ASGI messages themselves: `request.stream()`, an async generator that yields
    twice for a one-message body, cost as much again (2-3 µs)."""
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ClientDisconnect()
        if kind != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_json(raw: bytes) -> Any:
    """`raw` as strict JSON, or a 400: no NaN/Infinity or numbers that overflow to them, nothing
    nested deeper than MAX_JSON_DEPTH (deep nesting breaks every recursive step downstream),
    and no `\\u` escape of an unpaired surrogate (such a string cannot be encoded as UTF-8)."""
    try:
        # Decoded strictly: json.loads(bytes) would let UTF-8-encoded surrogates through.
        if raw[:1] == b"{" and raw[1:2] != b"\0":
            # What clients send: UTF-8 by json.detect_encoding's own rules (no BOM, not UTF-16
            # or UTF-32), asked for no more than that.
            text = raw.decode()
        else:
            text = raw.decode(json.detect_encoding(raw))
            if text.startswith("\ufeff"):  # as json.loads refuses it
                raise ValueError("unexpected byte order mark")
        data = _whole_value(text)
    except RecursionError:
        raise _nested_too_deep() from None
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest("the request body is not valid JSON", code="invalid_json") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _too_deep(data, MAX_JSON_DEPTH):
        raise _nested_too_deep()
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and not _utf8_encodable(data):
        raise BadRequest(
            "the request body escapes an unpaired UTF-16 surrogate", code="invalid_json"
        )
    return data


def _whole_value(text: str) -> Any:
    """`_DECODER.decode(text)`, its ValueErrors included, without the two Python frames and
    the whitespace regex in front of the C scanner when the text opens with its value."""
    if text[:1] in _NOT_A_VALUE_START:  # leading whitespace, or nothing: the general path
        return _DECODER.decode(text)
    try:
        data, end = _SCAN(text, 0)
    except StopIteration:
        raise ValueError("expecting a value") from None
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the value")
    return data


def _nested_too_deep() -> BadRequest:
    message = f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
    return BadRequest(message, code="invalid_json")


def _not_json(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal} is out of range")
    return value


# Built once: json.loads(text, **hooks) builds a decoder and its scanner on every call (2 µs).
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
# The decoder's own C scanner (its `scan_once`, which typeshed does not declare).
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]
# What JSON counts as whitespace around a value (json's own `WHITESPACE` pattern).
_JSON_SPACE = " \t\n\r"
_NOT_A_VALUE_START = frozenset({"", " ", "\t", "\n", "\r"})


def _too_deep(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _utf8_encodable(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


# What a client's x-request-id may be to be used as ours (echoed, logged, in the ledger): UUIDs,
# ULIDs, trace ids and the like; anything else (spaces, quotes, markup, escapes, non-ASCII) is
# replaced, never cleaned up, so nothing a client crafts reaches a header, log line or report.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# The request headers `meta` reads, by ASGI (lower-case) name: their slot in its one pass.
_META_HEADERS = {
    b"x-request-id": 0,
    b"x-triage-task": 1,
    b"authorization": 2,
    b"traceparent": 3,
    b"tracestate": 4,
}


def meta(request: Request) -> Meta:
    """What the service needs from the headers, read in one pass over them (the first of a
    repeated header counts, as with `request.headers.get`)."""
    found: list[str | None] = [None] * 5
    for name, value in request.scope["headers"]:
        slot = _META_HEADERS.get(name)
        if slot is not None and found[slot] is None:
            found[slot] = value.decode("latin-1")
    rid, task, authorization, traceparent, tracestate = found
    if rid is None or _REQUEST_ID.fullmatch(rid) is None:
        rid = os.urandom(16).hex()  # as unique as uuid4, a fraction of the cost
    return Meta(
        request_id=rid,
        forced_task=task.strip() if task else None,
        authorization=authorization,
        trace=(traceparent, tracestate) if traceparent else None,
    )
