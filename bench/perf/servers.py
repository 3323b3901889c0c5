"""The configurations under test, as command lines and config files, plus the backend fake.

(a) the fake upstream itself, (b) bench/passthrough.py, (c) Triage with every feature on over
the native lane, (d) Triage on the litellm lane, (e) LiteLLM's own proxy from its own
virtualenv; for the workers row (c1s) and (c4): (c) on `state.backend: sqlite` (what a key with
limits needs under `--workers N`) with one and four workers; (r1) and (r4): one and four
replicas (separate `triage serve` processes, clients spread over their ports) on one Valkey
store (`state.backend: redis`), issue 15's scale-out row.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from perf.procs import free_port

BENCH_DIR = Path(__file__).resolve().parent.parent
FAKE_ARGS = ("--completion-tokens", "20", "--chunk-tokens", "1", "--no-record")
API_KEY = "bench-not-a-secret"
# The client key every request carries (servers without keys ignore the header). Its limits are
# far above what a bench sends, so they are checked and reserved on every request, never hit.
CLIENT_KEY = "bench-client-key-not-a-secret"
CLIENT_KEY_ENV = "TRIAGE_BENCH_CLIENT_KEY"
CLIENT_HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}"}
WORKERS = 4


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    argv: list[str]
    port: int
    model: str
    health: str = "/health"
    workers: int = 1  # processes serving it: the cores it gets when the layout spreads
    env: dict[str, str] = field(default_factory=dict)
    startups: int | None = None  # fresh spawns for the start-up median (None: the default)
    ready_timeout: float = 30.0
    replica_ports: tuple[int, ...] = ()  # further replicas beside `port` (the clients spread)

    def urls(self, path: str) -> list[str]:
        return [f"http://127.0.0.1:{p}{path}" for p in (self.port, *self.replica_ports)]


def fake_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "triage.fakeupstream", "--port", str(port), *FAKE_ARGS]


def _deployment(group: str, model: str, base: str, **info: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "api_base": base + "/v1", "api_key": API_KEY}
    if not info.get("local"):
        params |= {"input_cost_per_token": 2.5e-6, "output_cost_per_token": 1e-5}
    return {"model_name": group, "litellm_params": params, "model_info": info}


def _auth() -> dict[str, Any]:
    key = {
        "id": "bench",
        "key": f"os.environ/{CLIENT_KEY_ENV}",
        "rpm": 1_000_000_000,
        "tpm": 1_000_000_000_000,
        "budget": {"daily_usd": 1_000_000, "monthly_usd": 10_000_000},
    }
    return {"keys": [key]}


def triage_config(
    backend: str, ledger: Path, lane: str, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every feature on, as in issue 16: classification via `auto`, latency-based routing,
    routes with fallbacks, escalation, a client key with rpm, tpm and budgets (reserved and
    settled on every request), the sensitive-data scan (on by default), metering with savings,
    metrics (always on) and the SQLite ledger. `state`: the shared state (sqlite or redis)."""
    config: dict[str, Any] = {
        "model_list": [
            _deployment(
                "local-small",
                "hosted_vllm/fake-model",
                backend,
                id="fake-local-1",
                local=True,
                gpu_hour_cost=0.6,
            ),
            _deployment(
                "local-coder",
                "hosted_vllm/fake-small",
                backend,
                id="fake-coder-1",
                local=True,
                gpu_hour_cost=1.2,
            ),
            _deployment("cloud-large", "hosted_vllm/fake-large", backend, id="fake-cloud-1"),
        ],
        "router_settings": {
            "routing_strategy": "latency-based-routing",
            "num_retries": 1,
            "fallbacks": [{"local-small": ["cloud-large"]}, {"local-coder": ["cloud-large"]}],
        },
        "triage": {
            "aliases": ["auto"],
            "default_route": ["local-small", "cloud-large"],
            "routes": {
                "classification": ["local-small", "cloud-large"],
                "extraction": ["local-small", "cloud-large"],
                "code": ["local-coder", "cloud-large"],
                "reasoning": ["cloud-large"],
            },
            "escalate": {"difficulty_above": 0.9, "route": ["cloud-large"]},
            "savings": {"reference_model": "openai/gpt-4o"},
            "ledger": {"enabled": True, "path": str(ledger)},
            "lane": lane,
            "sensitive": {"enabled": True},
        },
        "auth": _auth(),
        "server": {"log_level": "warning"},
    }
    if state is not None:
        config["state"] = state
    return config


# LiteLLM's proxy logs every request by default; Triage and (b) do not, so silence it here.
QUIET_UVICORN = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"uvicorn.access": {"level": "WARNING"}, "uvicorn.error": {"level": "WARNING"}},
}


def litellm_config(backend: str) -> dict[str, Any]:
    params = {"model": "hosted_vllm/fake-model", "api_base": backend + "/v1", "api_key": API_KEY}
    return {
        "model_list": [{"model_name": "local-small", "litellm_params": params}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def triage_argv() -> list[str]:
    """`triage` from this interpreter's environment, or the module where only PYTHONPATH has
    it (the device machine: wheels in a --target folder, no console script)."""
    script = Path(sys.executable).parent / "triage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "triage.cli"]


def _triage(key: str, label: str, config: Path, port: int, workers: int = 1) -> ServerSpec:
    argv = [*triage_argv(), "serve", "--config", str(config)]
    argv += ["--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    env = {CLIENT_KEY_ENV: CLIENT_KEY}
    return ServerSpec(key, label, argv, port, model="auto", workers=workers, env=env)


def _litellm_proxy(work: Path, backend: str, port: int, binary: Path) -> ServerSpec:
    """Started once (its start-up takes tens of seconds), access log off like the others."""
    config = _write(work / "litellm.yaml", litellm_config(backend))
    log_config = work / "litellm-logging.json"
    log_config.write_text(json.dumps(QUIET_UVICORN))
    argv = [str(binary), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"]
    argv += ["--num_workers", "1", "--log_config", str(log_config)]
    return ServerSpec(
        "e",
        "(e) LiteLLM proxy",
        argv,
        port,
        "local-small",
        "/health/liveliness",
        env={"LITELLM_LOG": "ERROR"},
        startups=1,
        ready_timeout=180.0,
    )


def _replicas(key: str, work: Path, backend: str, store: str, ports: list[int]) -> ServerSpec:
    """`len(ports)` replicas on the store `store` (a redis:// URL), each with its own ledger."""
    state = {"backend": "redis", "url": store}
    pairs = []
    for i, port in enumerate(ports):
        config = triage_config(backend, work / f"{key}-{i}.db", "native", state)
        pairs.append(f"{port}:{_write(work / f'triage-{key}-{i}.yaml', config)}")
    launcher = [sys.executable, str(BENCH_DIR / "perf" / "replicas.py"), ",".join(pairs), "--"]
    label = f"(c) redis state, {len(ports)} replica" + ("s" if len(ports) > 1 else "")
    env = {CLIENT_KEY_ENV: CLIENT_KEY}
    return ServerSpec(
        key,
        label,
        [*launcher, *triage_argv(), "serve"],
        ports[0],
        model="auto",
        workers=len(ports),
        env=env,
        startups=1,
        replica_ports=tuple(ports[1:]),
    )


def replica_specs(work: Path, backend: str, store: str) -> list[ServerSpec]:
    """(r1) and (r4): one and `WORKERS` replicas on one Valkey."""
    return [
        _replicas(key, work, backend, store, [free_port() for _ in range(count)])
        for key, count in (("r1", 1), ("r4", WORKERS))
    ]


def build_specs(
    work: Path, backend: str, ports: dict[str, int], litellm_bin: Path | None
) -> list[ServerSpec]:
    """Specs in table order; (e) only when `litellm_bin` is given."""
    native = _write(work / "triage-native.yaml", triage_config(backend, work / "c.db", "native"))
    shared = {"backend": "sqlite", "path": str(work / "state.db")}
    native_sqlite = _write(
        work / "triage-sqlite.yaml", triage_config(backend, work / "c4.db", "native", shared)
    )
    native_sqlite1 = _write(
        work / "triage-sqlite1.yaml",
        triage_config(
            backend, work / "c1s.db", "native", {"backend": "sqlite", "path": str(work / "s1.db")}
        ),
    )
    via_litellm = _write(
        work / "triage-litellm.yaml", triage_config(backend, work / "d.db", "litellm")
    )
    passthrough = [sys.executable, str(BENCH_DIR / "passthrough.py"), "--upstream"]
    specs = [
        ServerSpec(
            "a", "(a) fake upstream direct", fake_argv(ports["a"]), ports["a"], "fake-model"
        ),
        ServerSpec(
            "b",
            "(b) FastAPI pass-through",
            [*passthrough, backend + "/v1", "--port", str(ports["b"])],
            ports["b"],
            "fake-model",
        ),
        _triage("c", "(c) Triage native lane", native, ports["c"]),
        _triage("d", "(d) Triage litellm lane", via_litellm, ports["d"]),
    ]
    if litellm_bin is not None:
        specs.append(_litellm_proxy(work, backend, ports["e"], litellm_bin))
    specs.append(_triage("c1s", "(c) sqlite state, 1 worker", native_sqlite1, ports["c1s"]))
    specs.append(
        _triage("c4", f"(c) sqlite state, {WORKERS} workers", native_sqlite, ports["c4"], WORKERS)
    )
    return specs
