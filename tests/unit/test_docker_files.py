"""docker/: the image, the compose stack, Prometheus, Grafana provisioning and the dashboard.

No Docker engine is needed: the files are parsed and checked against each other and against the
code (the config schema, the CLI entry point, the collectors in src/triage/metrics.py).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from triage.config import load_config

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "docker-compose.yml"
PROMETHEUS = DOCKER / "prometheus.yml"
DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = DOCKER / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "triage.json"
COMPOSE_CONFIG = DOCKER / "config.compose.yaml"
METRICS_PY = REPO / "src" / "triage" / "metrics.py"

PORT = 4000
SERVICES = {"triage", "ollama", "valkey", "postgres", "prometheus", "grafana"}


# --- helpers ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def instructions() -> tuple[tuple[str, str], ...]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [
        line
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return tuple(out)


def final_stage() -> list[tuple[str, str]]:
    steps = list(instructions())
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def image_tag(image: str) -> str | None:
    """The tag of `repo[:tag][@digest]`; None when untagged. A registry port is not a tag."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def assert_pinned(image: str) -> None:
    tag = image_tag(image)
    assert tag or "@sha256:" in image, f"{image}: no tag"
    assert tag != "latest", f"{image}: `latest` is not a pin"


@cache
def collectors() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Collector name -> (type, label names), read from the source of src/triage/metrics.py."""
    pattern = re.compile(
        r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*"
        r'"([a-zA-Z_:][a-zA-Z0-9_:]*)"\s*,\s*'  # name
        r'"(?:[^"\\]|\\.)*"\s*,?\s*'  # documentation
        r"(\[[^\]]*\])?",  # label names, when given positionally
    )
    found = {}
    for kind, name, labels in pattern.findall(METRICS_PY.read_text(encoding="utf-8")):
        found[name] = (kind, tuple(re.findall(r'"(\w+)"', labels)))
    assert len(found) >= 10 and "triage_requests" in found, "metrics.py parse went wrong"
    return found


@cache
def exposed() -> dict[str, frozenset[str]]:
    """Every sample name prometheus-client exposes for those collectors -> its label names."""
    out: dict[str, frozenset[str]] = {}
    for name, (kind, labels) in collectors().items():
        plain = frozenset(labels)
        if kind == "Counter":
            base = name.removesuffix("_total")
            out |= {f"{base}_total": plain, f"{base}_created": plain}
        elif kind in ("Histogram", "Summary"):
            out |= {f"{name}_{s}": plain for s in ("sum", "count", "created")}
            if kind == "Histogram":
                out[f"{name}_bucket"] = plain | {"le"}
            else:
                out[name] = plain | {"quantile"}
        elif kind == "Info":
            out[f"{name}_info"] = plain
        elif kind == "Enum":
            out[name] = plain | {name}
        else:  # Gauge
            out[name] = plain
    return out


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out += all_panels(panel.get("panels", []))
    return out


def queries() -> list[tuple[str, str, str]]:
    """(panel title, PromQL, legend format) of every dashboard target."""
    return [
        (panel.get("title", ""), target["expr"], target.get("legendFormat", ""))
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


METRIC_REF = re.compile(r"\b(triage_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_pinned_python_slim() -> None:
    froms = [shlex.split(args) for word, args in instructions() if word == "FROM"]
    assert len(froms) >= 2
    stages: set[str] = set()
    for words in froms:
        words = [w for w in words if not w.startswith("--")]
        image = words[0]
        if image not in stages:
            assert image.startswith("python:3.11-slim"), image
            assert_pinned(image)
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    assert not re.search(r":latest\b", DOCKERFILE.read_text(encoding="utf-8"))


def test_dockerfile_installs_with_constraints_into_a_venv() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "-c constraints.txt" in runs
    assert "/opt/venv" in runs
    copies = [args for word, args in final_stage() if word == "COPY"]
    assert any("--from=builder" in c and "/opt/venv" in c for c in copies)


def test_dockerfile_copies_only_files_that_exist_in_the_build_context() -> None:
    for word, args in instructions():
        if word != "COPY" or "--from" in args:
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: missing from the build context"


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":", 1)[0]
    assert user not in ("root", "0"), user


def test_dockerfile_env_port_and_volume() -> None:
    stage = final_stage()
    env = " ".join(args for word, args in stage if word == "ENV")
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in env
    assert "PYTHONUNBUFFERED=1" in env
    assert ("EXPOSE", str(PORT)) in stage
    assert any(word == "VOLUME" and "/var/lib/triage" in args for word, args in stage)


def test_dockerfile_has_a_healthcheck_on_health() -> None:
    checks = [args for word, args in final_stage() if word == "HEALTHCHECK"]
    assert len(checks) == 1 and "NONE" not in checks[0].upper()
    assert f"http://127.0.0.1:{PORT}/health" in checks[0]
    assert "urllib" in checks[0]  # slim has no curl
    exec_form = checks[0].split("CMD", 1)[1].strip()
    assert json.loads(exec_form)[0] == "python"


def test_dockerfile_entrypoint_is_the_cli() -> None:
    stage = dict(final_stage())
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert json.loads(stage["ENTRYPOINT"]) == ["triage"]
    assert "triage" in scripts
    cmd = json.loads(stage["CMD"])
    assert cmd[0] == "serve"
    assert cmd[cmd.index("--config") + 1] == "/etc/triage/config.yaml"
    assert cmd[cmd.index("--port") + 1] == str(PORT)


# --- compose ----------------------------------------------------------------------------------


def test_compose_has_the_services_and_pinned_images() -> None:
    services = load_yaml(COMPOSE)["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if "build" in service:
            continue  # built here; its base images are checked in the Dockerfile
        assert "image" in service, name
        assert_pinned(service["image"])
    assert not re.search(r":latest\b", COMPOSE.read_text(encoding="utf-8"))


def test_compose_builds_triage_from_the_repo_root() -> None:
    triage = load_yaml(COMPOSE)["services"]["triage"]
    context = (DOCKER / triage["build"]["context"]).resolve()
    assert context == REPO
    assert (context / triage["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert "healthcheck" not in triage  # the image's HEALTHCHECK applies
    assert any(str(p).endswith(f":{PORT}") for p in triage["ports"])
    assert triage["environment"]["OPENAI_API_KEY"] == "${OPENAI_API_KEY:-}"
    assert "ollama" in triage["depends_on"]
    targets = [v.split(":")[1] for v in triage["volumes"]]
    assert "/etc/triage/config.yaml" in targets and "/var/lib/triage" in targets


def test_compose_gives_triage_the_shared_store_and_ledger() -> None:
    services = load_yaml(COMPOSE)["services"]
    triage = services["triage"]
    for name in ("valkey", "postgres"):
        assert triage["depends_on"][name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"], name
    env = triage["environment"]
    assert env["TRIAGE_STATE_URL"].startswith("redis://valkey:6379/")
    assert "@postgres:5432/" in env["TRIAGE_LEDGER_DSN"]
    postgres = services["postgres"]["environment"]
    assert (
        f"{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@" in env["TRIAGE_LEDGER_DSN"]
    )


def test_compose_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    data = load_yaml(COMPOSE)
    declared = set(data.get("volumes") or {})
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_compose_config_is_a_valid_triage_config() -> None:
    # Compose passes OPENAI_API_KEY as "" when it is unset: the config must still load.
    config = load_config(COMPOSE_CONFIG, {"OPENAI_API_KEY": ""})
    assert config.server.host == "0.0.0.0"
    assert config.server.port == PORT
    assert config.triage.ledger.path.startswith("/var/lib/triage/")
    bases = {d.litellm_params.api_base for d in config.model_list}
    assert "http://ollama:11434" in bases
    assert any(d.model_info.local for d in config.model_list)


# --- Prometheus and Grafana -------------------------------------------------------------------


def test_prometheus_scrapes_triage_every_15s() -> None:
    data = load_yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in data["scrape_configs"]}
    job = jobs["triage"]
    assert job.get("scrape_interval", data["global"]["scrape_interval"]) == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"triage:{PORT}"]
    mounts = load_yaml(COMPOSE)["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_provisioning_matches_the_stack() -> None:
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    variable = next(v for v in dashboard()["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == datasource["uid"]

    provider = load_yaml(PROVIDERS)["providers"][0]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"


def test_dashboard_shape() -> None:
    data = dashboard()
    assert data["uid"] == "triage"
    assert data["schemaVersion"] >= 39
    panels = all_panels(data["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel.get("targets"), panel["title"]


@pytest.mark.parametrize(
    "metric",
    [
        "triage_cost_usd_total",
        "triage_cost_avoided_usd_total",
        "triage_requests_total",
        "triage_request_duration_seconds_bucket",
        "triage_time_to_first_token_seconds_bucket",
        "triage_overhead_seconds_bucket",
        "triage_fallbacks_total",
        "triage_retries_total",
        "triage_deployment_state",
        "triage_in_flight_requests",
        "triage_tokens_total",
    ],
)
def test_dashboard_covers(metric: str) -> None:
    assert any(re.search(rf"\b{metric}\b", expr) for _, expr, _ in queries())


def test_dashboard_queries_only_metrics_and_labels_that_exist() -> None:
    names = exposed()
    for title, expr, legend in queries():
        refs = METRIC_REF.findall(expr)
        assert refs, f"{title}: queries no triage metric"
        known: set[str] = set()
        for metric, selector in refs:
            assert metric in names, f"{title}: {metric} is not exposed by metrics.py"
            labels = set(MATCHER.findall(selector))
            assert labels <= names[metric], f"{title}: {metric} has no {labels - names[metric]}"
            known |= names[metric]
        grouped = {w.strip() for g in GROUPING.findall(expr) for w in g.split(",") if w.strip()}
        assert grouped <= known, f"{title}: no such label(s) {grouped - known}"
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        assert shown <= known, f"{title}: legend uses unknown label(s) {shown - known}"
