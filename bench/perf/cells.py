"""Measuring cells: each configuration runs once per round, in an order that rotates every
round, so drift and noise on the machine land on every configuration alike.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Sequence
from typing import Any

from perf import procs
from perf.fleet import Fleet, LoadGen
from perf.servers import CLIENT_HEADERS
from perf.settings import PROMPT, BenchSettings, Scenario
from perf.stats import CellStats

PATH = "/v1/chat/completions"


def body(model: str, stream: bool) -> dict[str, Any]:
    request: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        request["stream"] = True
    return request


def _segment(
    fleet: Fleet,
    loadgen: LoadGen,
    key: str,
    scenario: Scenario,
    settings: BenchSettings,
    per_worker: bool,
) -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    server = fleet.servers[key]
    spec = fleet.specs[key]
    url = spec.urls(PATH) if spec.replica_ports else server.url(PATH)
    request = body(spec.model, scenario.stream)
    clients = scenario.concurrency * (spec.workers if per_worker else 1)
    loadgen.run(url, request, clients, settings.warmup, CLIENT_HEADERS)
    cpu0, backend0 = procs.cpu_seconds(server.pid), fleet.backend_cpu()
    machine0, wall0 = procs.busy_cores_seconds(), time.perf_counter()
    run = loadgen.run(url, request, clients, settings.seconds, CLIENT_HEADERS)
    machine, wall = procs.busy_cores_seconds() - machine0, time.perf_counter() - wall0
    server_cpu = procs.cpu_seconds(server.pid) - cpu0
    backend_cpu = fleet.backend_cpu() - backend0 if key != "a" else 0.0
    return run, (server_cpu, backend_cpu, machine, wall)


def measure(
    fleet: Fleet,
    loadgen: LoadGen,
    scenario: Scenario,
    keys: Sequence[str],
    settings: BenchSettings,
    *,
    per_worker: bool = False,
) -> dict[str, dict[str, Any]]:
    """Each configuration of `keys` at `scenario`; `per_worker`: `scenario.concurrency` clients
    per worker or replica (a server of four gets four times the clients), so each process sees
    the same load whatever the fleet's size."""
    cells = {key: CellStats() for key in keys}
    for turn in range(settings.rounds):
        shift = turn % len(keys)
        for key in [*keys[shift:], *keys[:shift]]:
            cells[key].add(*_segment(fleet, loadgen, key, scenario, settings, per_worker))
    return {key: cell.summary() for key, cell in cells.items()}


def probe(server: procs.Server, model: str) -> dict[str, Any]:
    """One plain and one streamed request: status, triage headers and SSE event count."""
    out: dict[str, Any] = {}
    for stream in (False, True):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            payload = json.dumps(body(model, stream))
            headers = {"Content-Type": "application/json", **CLIENT_HEADERS}
            conn.request("POST", PATH, payload, headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        headers = {k: v for k, v in response.getheaders() if k.lower().startswith("x-triage-")}
        result: dict[str, Any] = {"status": response.status, "headers": headers}
        if stream:
            result["events"] = raw.count(b"data: ")
            result["done"] = raw.rstrip().endswith(b"data: [DONE]")
        elif response.status != 200:
            result["body"] = raw[:300].decode(errors="replace")
        out["stream" if stream else "plain"] = result
    return out
