"""Where Triage (c) spends its CPU under load: py-spy samples of the server while the load
generator drives one cell, aggregated into shares by file:function and by package.

Needs py-spy, which is not a project dependency: `.venv/bin/pip install py-spy`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import yaml

from perf import cells, layout, procs
from perf.fleet import ALL_CPUS, Fleet, LoadGen
from perf.servers import (
    BENCH_DIR,
    CLIENT_HEADERS,
    CLIENT_KEY,
    CLIENT_KEY_ENV,
    ServerSpec,
    triage_argv,
    triage_config,
)

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
SITE = re.compile(r".*/(?:site-packages|lib/python3\.\d+)/")


def _where(frame: str) -> tuple[str, str]:
    """(short file:function, package) for one py-spy frame."""
    match = FRAME.match(frame)
    if match is None:
        return frame, frame
    path = match["file"]
    short = SITE.sub("", path)
    short = short.split("/src/", 1)[-1]
    package = short.split("/", 1)[0].removesuffix(".py")
    if package == "triage":
        package = "/".join(short.split("/")[:2]).removesuffix(".py")
    return f"{short}:{match['func']}", package


def _read(raw: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def aggregate(stacks: Iterable[tuple[list[str], int]]) -> dict[str, Counter[str]]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    for frames, count in stacks:
        names = [_where(f) for f in frames]
        leaf, package = names[-1]
        self_time[leaf] += count
        by_package[package] += count
        for name in {n for n, _ in names if n.startswith("triage/")}:
            inclusive[name] += count
    return {"self": self_time, "inclusive": inclusive, "package": by_package}


def render(totals: dict[str, Counter[str]], samples: int, top: int) -> str:
    titles = {
        "package": "self time by package (leaf frame)",
        "inclusive": "inclusive time of triage functions",
        "self": "self time by file:function",
    }
    out = []
    for key, title in titles.items():
        out.append(f"-- {title} ({samples} samples) --")
        out += [f"{100 * n / samples:6.1f}%  {name}" for name, n in totals[key].most_common(top)]
    return "\n".join(out)


def _record(pid: int, seconds: float, rate: int, raw: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
    argv += ["--format", "raw", "--output", str(raw), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _spec(target: str, work: Path, backend: str) -> ServerSpec:
    port = procs.free_port()
    if target == "passthrough":
        argv = [sys.executable, str(BENCH_DIR / "passthrough.py"), "--upstream", backend + "/v1"]
        return ServerSpec("b", "passthrough", [*argv, "--port", str(port)], port, "fake-model")
    config = work / "triage.yaml"
    config.write_text(yaml.safe_dump(triage_config(backend, work / "c.db", target)))
    argv = [*triage_argv(), "serve", "--config", str(config)]
    env = {CLIENT_KEY_ENV: CLIENT_KEY}
    return ServerSpec("c", "triage", [*argv, "--port", str(port)], port, "auto", env=env)


def _sample(
    fleet: Fleet, loadgen: LoadGen, spec: ServerSpec, args: argparse.Namespace
) -> tuple[Path, float, float]:
    """py-spy over one loaded run: (raw stacks, req/s, server CPU microseconds per request)."""
    server = fleet.servers[spec.key]
    url, request = server.url(cells.PATH), cells.body(spec.model, args.stream)
    loadgen.run(url, request, args.concurrency, 1.0, CLIENT_HEADERS)
    raw = fleet.work / "profile.txt"
    spy = _record(server.pid, args.seconds, args.rate, raw)
    time.sleep(0.5)
    cpu0 = procs.cpu_seconds(server.pid)
    run = loadgen.run(url, request, args.concurrency, args.seconds, CLIENT_HEADERS)
    cpu = procs.cpu_seconds(server.pid) - cpu0
    _, err = spy.communicate(timeout=60)
    if not raw.exists():
        raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')}")
    return raw, run["count"] / run["elapsed"], cpu / max(1, run["count"]) * 1e6


def profile(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="triage-profile-"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    plan = layout.plan(sorted(ALL_CPUS), {"b": 1, "c": 1}, pin=True)
    if plan.load is not None:
        os.sched_setaffinity(0, plan.load)
    fleet, loadgen = Fleet(work, plan, env), LoadGen(plan.load)
    try:
        spec = _spec(args.target, work, fleet.start_backend())
        fleet.start(spec, 1)
        raw, rps, cpu_us = _sample(fleet, loadgen, spec, args)
        stacks = _read(raw)
        if args.raw_out:
            shutil.copy(raw, args.raw_out)
        head = f"{args.target}, {'stream' if args.stream else 'plain'}, {args.concurrency} "
        head += f"clients: {rps:.0f} req/s under py-spy, {cpu_us:.0f} us server CPU per request"
        return head + "\n" + render(aggregate(stacks), sum(n for _, n in stacks), args.top)
    finally:
        loadgen.close()
        fleet.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument(
        "--target",
        choices=["native", "litellm", "passthrough"],
        default="native",
        help="Triage (c) on the native lane, (d) on the litellm lane, or (b)",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw-out", help="also keep py-spy's raw stacks here")
    print(profile(parser.parse_args()))
    return 0
