"""Test helpers: configs built in code and the real app served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from triage.config import Config
from triage.config.loader import build_config


def config_from(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    body = {"triage": {"ledger": {"enabled": False}}, **data}
    return build_config(dict(body), env or {}, source="<test>")


def deployment(group: str, model: str, api_base: str | None = None, **info: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model}
    if api_base is not None:
        params["api_base"] = api_base
    params.update(info.pop("params", {}))
    entry: dict[str, Any] = {"model_name": group, "litellm_params": params}
    if info:
        entry["model_info"] = info
    return entry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(app: FastAPI | ASGIApp, **options: Any) -> Iterator[str]:
    """Run the app under a real uvicorn server on loopback (with lifespan unless `options`
    say otherwise) in a thread; `options` go to uvicorn.Config."""
    port = free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **settings))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
