"""What a config reload must check, and how the runtime it replaces is released.

A reload re-runs the start-up safety checks (no keyless config on a public bind; no dropping
client keys on a server that was started with them) and compares the new config with the
serving one: a setting that is read once, when the server or the app is built, is refused with
its YAML path when it changed ("`triage.ledger.path` changed: needs a restart"), so that no
change is accepted and silently ignored. Everything else is applied: the new runtime is built
from the whole new config.

The replaced runtime keeps serving the requests that already hold it. Requests are counted per
*epoch* (the number of reloads before they arrived); a runtime retired at epoch k is closed and
dropped once no request of epoch k or earlier is still in flight.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from triage import __version__
from triage.config.schema import Config, ServerSettings
from triage.metrics import Metrics
from triage.runtime import Runtime

# server.* settings read per request from the serving config: a reload applies them.
LIVE_SERVER = frozenset({"max_body_bytes", "max_messages", "max_tokens", "metrics_public"})
# Settings read once, when the app is built (the ledger, the stores, the middleware) or when
# the server starts listening (every other server.* setting).
FIXED = (
    "triage.ledger",
    "state",
    "telemetry",
    "router_settings.allowed_fails",
    "router_settings.cooldown_time",
)


def reload_problems(
    old: Config, new: Config, *, started_with_keys: bool, bind_host: str
) -> list[str]:
    """Why `new` may not replace `old` on a running server; empty when it may."""
    problems: list[str] = []
    if started_with_keys and not new.auth.enabled:
        problems.append(
            "auth.keys: the server was started with client keys; a config without them would "
            "switch authentication off (restart the server to serve without keys)"
        )
    elif not (new.auth.enabled or new.auth.allow_public_without_keys or is_loopback(bind_host)):
        problems.append(
            f"auth.keys: none configured, and this server listens on {bind_host}: anyone "
            "who can reach it could spend your API keys"
        )
    fixed = [*FIXED, *(f"server.{name}" for name in fixed_server_settings())]
    before, after = old.model_dump(), new.model_dump()
    for path in fixed:
        for changed in _changed(_at(before, path), _at(after, path), path):
            problems.append(f"`{changed}` changed: needs a restart")
    return problems


def show_config(metrics: Metrics, config: Config) -> None:
    """`triage_config_info` for the serving config (the last one only, after a reload)."""
    metrics.config_info.clear()
    shape = (__version__, str(len(config.model_list)), str(len(config.groups)))
    metrics.config_info.labels(*shape).set(1)


def fixed_server_settings() -> list[str]:
    return [name for name in ServerSettings.model_fields if name not in LIVE_SERVER]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _at(tree: Any, path: str) -> Any:
    for part in path.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _changed(old: Any, new: Any, path: str) -> list[str]:
    """The leaf paths under `path` whose values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted({*old, *new}, key=str):
            out.extend(_changed(old.get(key), new.get(key), f"{path}.{key}"))
        return out
    return [] if old == new else [path]


class Retirement:
    """In-flight requests per epoch, and the retired runtimes waiting for theirs to end."""

    def __init__(self) -> None:
        self.epoch = 0
        self._in_flight: dict[int, int] = {}
        self._retired: list[tuple[int, Runtime]] = []
        self._closing: set[asyncio.Task[None]] = set()

    def enter(self) -> int:
        epoch = self.epoch
        in_flight = self._in_flight
        in_flight[epoch] = in_flight.get(epoch, 0) + 1
        return epoch

    def leave(self, epoch: int) -> None:
        in_flight = self._in_flight
        left = in_flight[epoch] - 1
        if left:
            in_flight[epoch] = left
        else:
            del in_flight[epoch]
        if self._retired:
            self.release()

    def retire(self, runtime: Runtime) -> None:
        self._retired.append((self.epoch, runtime))
        self.epoch += 1
        self.release()

    @property
    def retired(self) -> int:
        """How many replaced runtimes are still held (waiting for their requests)."""
        return len(self._retired)

    def release(self) -> None:
        """Close every retired runtime that no in-flight request can still be using."""
        oldest = min(self._in_flight, default=self.epoch)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # closed at shutdown instead
        keep: list[tuple[int, Runtime]] = []
        for epoch, runtime in self._retired:
            if epoch < oldest:
                task = loop.create_task(runtime.lanes.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            else:
                keep.append((epoch, runtime))
        self._retired = keep

    async def close(self) -> None:
        """At shutdown: close what is still retired and wait for the closes under way."""
        retired, self._retired = self._retired, []
        for _, runtime in retired:
            await runtime.lanes.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
