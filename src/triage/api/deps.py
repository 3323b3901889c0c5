"""What handlers need from the app, reached through the request (no globals)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from triage.api.errors import validation_error
from triage.config import ConfigError, summary
from triage.config.schema import Config
from triage.errors import BadRequest, PayloadTooLarge
from triage.runtime import Runtime, Shared, build_runtime
from triage.service import Meta, Service

log = logging.getLogger("triage.api")

M = TypeVar("M", bound=BaseModel)


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
    ) -> None:
        self.runtime = runtime
        self.shared = shared
        self.config_source = config_source
        self.extras = extras
        self._retired: list[Runtime] = []

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def service(self) -> Service:
        return self.runtime.service

    def reload(self) -> Runtime:
        """Build a runtime from the re-read config and swap it in; raise and keep the old one
        if the new config is invalid."""
        if self.config_source is None:
            raise BadRequest("this server was not started from a config file: nothing to reload")
        try:
            config = self.config_source()
            runtime = build_runtime(config, self.shared)
        except ConfigError as exc:
            raise InvalidConfig(exc.problems) from None
        except (OSError, ValueError) as exc:
            raise InvalidConfig([str(exc)]) from None
        self._retired.append(self.runtime)
        self.runtime = runtime
        log.warning("config reloaded: %s", summary(config))
        return runtime

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
        except InvalidConfig as exc:
            log.error("config reload refused: %s", "; ".join(exc.problems))

    async def close(self) -> None:
        for runtime in [*self._retired, self.runtime]:
            await runtime.lanes.close()


class InvalidConfig(BadRequest):
    default_code = "invalid_config"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "the new config is invalid; the old one keeps serving: " + "; ".join(problems)
        )
        self.problems = problems


def state(request: Request) -> AppState:
    value: AppState = request.app.state.triage
    return value


async def parse(request: Request, model: type[M]) -> M:
    limit = state(request).config.server.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def meta(request: Request) -> Meta:
    rid = request.headers.get("x-request-id") or ""
    if not (0 < len(rid) <= 128 and rid.isprintable()):
        rid = uuid.uuid4().hex
    task = request.headers.get("x-triage-task")
    return Meta(
        request_id=rid,
        forced_task=task.strip() if task else None,
        authorization=request.headers.get("authorization"),
    )
