"""The running processes of one bench: the backend fake, every configuration under test and
the load generator, with start-up timing, affinity and the fakes' latency setting.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perf import procs, store
from perf.layout import Layout
from perf.servers import ServerSpec, fake_argv

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
ALL_CPUS = frozenset(os.sched_getaffinity(0))


class LoadGen:
    """Load generator processes, each spoken to one JSON line at a time; a run's clients are
    split over them (on a big box one Python process would cap the fastest baseline)."""

    def __init__(self, cpus: Iterable[int] | None, processes: int = 1) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(LOADGEN)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(max(1, processes))
        ]
        if cpus is not None:
            self.affinity(cpus)

    def _send(self, proc: subprocess.Popen[str], command: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(command) + "\n")
        proc.stdin.flush()

    def _reply(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited with {proc.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _ask_all(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send each process its command at once, then collect every reply."""
        for proc, command in zip(self.procs, commands, strict=False):
            self._send(proc, command)
        return [self._reply(proc) for proc, _ in zip(self.procs, commands, strict=False)]

    def run(
        self,
        url: str | list[str],
        body: dict[str, Any],
        concurrency: int,
        seconds: float,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`url`: one server, or a list of replicas the clients spread over evenly."""
        urls = [url] if isinstance(url, str) else list(url)
        job = {"op": "run", "url": urls[0], "urls": urls, "body": body}
        job |= {"stream": bool(body.get("stream")), "seconds": seconds, "headers": headers or {}}
        share = min(len(self.procs), concurrency)
        counts = [concurrency // share + (i < concurrency % share) for i in range(share)]
        offsets = [sum(counts[:i]) for i in range(share)]
        pairs = zip(counts, offsets, strict=True)
        commands = [{**job, "concurrency": n, "offset": o} for n, o in pairs]
        return merge_runs(self._ask_all(commands))

    def affinity(self, cpus: Iterable[int]) -> None:
        self._ask_all([{"op": "affinity", "cpus": sorted(cpus)}] * len(self.procs))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                proc.stdin.close()
                proc.wait(10)


def merge_runs(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures from the processes that shared it."""
    errors = [r["first_error"] for r in replies if r["first_error"]]
    return {
        "count": sum(r["count"] for r in replies),
        "errors": sum(r["errors"] for r in replies),
        "first_error": errors[0] if errors else None,
        "elapsed": max(r["elapsed"] for r in replies),
        "latency": [v for r in replies for v in r["latency"]],
        "ttfb": [v for r in replies for v in r["ttfb"]],
        "cpu": sum(r["cpu"] for r in replies),
    }


@dataclass
class Fleet:
    work: Path
    layout: Layout
    env: dict[str, str]
    servers: dict[str, procs.Server] = field(default_factory=dict)
    specs: dict[str, ServerSpec] = field(default_factory=dict)
    startup: dict[str, list[float]] = field(default_factory=dict)
    rss_idle: dict[str, float] = field(default_factory=dict)
    backend: procs.Server | None = None
    store: procs.Server | None = None

    def cpus(self, key: str) -> frozenset[int] | None:
        return self.layout.of(key)

    @property
    def load_cpus(self) -> frozenset[int] | None:
        return self.layout.load

    def start_backend(self) -> str:
        port = procs.free_port()
        log = self.work / "backend-fake.log"
        started = time.perf_counter()
        self.backend = procs.spawn(
            "backend fake", fake_argv(port), port, self.env, self.load_cpus, log
        )
        procs.wait_ready(self.backend, "/health", started)
        return f"http://127.0.0.1:{port}"

    def start_store(self) -> str | None:
        """A Valkey for the replica rows, on the layout's "store" core; None: no binary."""
        binary = store.valkey_binary()
        if binary is None:
            return None
        port = procs.free_port()
        argv = store.valkey_argv(binary, port, self.work)
        cpus = self.layout.of("store") or self.load_cpus
        log = self.work / "valkey.log"
        self.store = procs.spawn("valkey", argv, port, self.env, cpus, log)
        store.wait_ready(port, lambda: self.store is not None and self.store.proc.poll() is None)
        return f"redis://127.0.0.1:{port}/0"

    def _spawn(self, spec: ServerSpec, attempt: int) -> tuple[procs.Server, float]:
        log = self.work / f"{spec.key}-{attempt}.log"
        env = {**self.env, **spec.env}
        started = time.perf_counter()
        server = procs.spawn(spec.label, spec.argv, spec.port, env, self.cpus(spec.key), log)
        try:
            seconds = procs.wait_ready(server, spec.health, started, spec.ready_timeout)
            for port in spec.replica_ports:  # the other replicas: ready too before any load
                replica = procs.Server(spec.label, server.proc, port, server.log)
                procs.wait_ready(replica, spec.health, started, spec.ready_timeout)
            return server, seconds
        except RuntimeError:
            procs.stop(server)
            raise

    def start(self, spec: ServerSpec, startups: int) -> None:
        """Spawn `startups` times for the start-up median; keep the last one running."""
        self.specs[spec.key] = spec
        times = []
        startups = spec.startups or startups
        for attempt in range(startups):
            server, seconds = self._spawn(spec, attempt)
            times.append(seconds)
            if attempt < startups - 1:
                procs.stop(server)
        self.servers[spec.key] = server
        self.startup[spec.key] = times
        time.sleep(0.2)  # let lazy start-up work settle before the idle reading
        self.rss_idle[spec.key] = procs.rss_mb(server.pid)

    def startup_median(self, key: str) -> float:
        return statistics.median(self.startup[key])

    def backend_cpu(self) -> float:
        return procs.cpu_seconds(self.backend.pid) if self.backend else 0.0

    def configure_fakes(self, settings: dict[str, float]) -> None:
        fakes = [self.backend] + ([self.servers["a"]] if "a" in self.servers else [])
        for fake in fakes:
            if fake is not None:
                _post_json(fake.port, "/_fake/config", settings)

    def pin_each_worker(self, key: str) -> None:
        """A multi-process server's processes one core each of its set (round-robin), as each
        one-worker server has its own: left to the scheduler they migrate between the cores
        and share caches. Its supervisor (uvicorn's or the replicas' launcher) keeps the set."""
        cpus = sorted(self.cpus(key) or [])
        if self.specs[key].workers < 2 or not cpus:
            return
        for index, child in enumerate(procs.children(self.servers[key].pid)):
            procs.set_affinity(child, [cpus[index % len(cpus)]])

    def unpin(self, keys: Iterable[str]) -> None:
        for key in keys:
            procs.set_affinity(self.servers[key].pid, ALL_CPUS)
        if self.backend is not None:
            procs.set_affinity(self.backend.pid, ALL_CPUS)

    def repin(self, keys: Iterable[str]) -> None:
        for key in keys:
            cpus = self.cpus(key)
            procs.set_affinity(self.servers[key].pid, cpus or ALL_CPUS)
        if self.backend is not None:
            procs.set_affinity(self.backend.pid, self.load_cpus or ALL_CPUS)

    def stop_all(self) -> None:
        for server in [*self.servers.values(), self.backend, self.store]:
            if server is not None:
                procs.stop(server)


def _post_json(port: int, path: str, body: dict[str, Any]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path} on :{port} answered {response.status}")
    finally:
        conn.close()
