"""docker/k8s/: the Kubernetes manifests, validated offline.

Every object is checked against the Kubernetes JSON schemas (`kubernetes-validate`, strict: an
unknown or misspelt field fails) without a cluster, and the objects are checked against each
other and against the code: selectors select the pods, probes hit Triage's health paths on the
port the config serves, every `os.environ/` reference of the ConfigMap's Triage config is a key
of the Secret, and that config passes Triage's own config check.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from triage.config import load_config

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "docker" / "k8s"
KUBERNETES = "1.33.0"
PORT = 4000


@cache
def documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return tuple(out)


def objects(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in objects(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def pod_specs() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(workload name, pod spec, pod labels) of every Deployment and StatefulSet."""
    return [
        (
            doc["metadata"]["name"],
            doc["spec"]["template"]["spec"],
            doc["spec"]["template"]["metadata"]["labels"],
        )
        for doc in objects("Deployment") + objects("StatefulSet")
    ]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def secret_data() -> dict[str, str]:
    data: dict[str, str] = one("Secret", "triage-secrets")["stringData"]
    return data


def triage_config_text() -> str:
    text: str = one("ConfigMap", "triage-config")["data"]["config.yaml"]
    return text


def gateway() -> dict[str, Any]:
    return one("Deployment", "triage")


def container() -> dict[str, Any]:
    found: dict[str, Any] = gateway()["spec"]["template"]["spec"]["containers"][0]
    return found


# --- schema -----------------------------------------------------------------------------------


def test_the_manifests_hold_every_object_the_issue_asks_for() -> None:
    kinds = {doc["kind"] for _, doc in documents()}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Secret",
        "StatefulSet",
    } <= kinds
    workloads = {name for name, _, _ in pod_specs()}
    assert {"triage", "triage-valkey", "triage-postgres"} <= workloads


@pytest.mark.parametrize("index", range(len(documents())))
def test_every_object_validates_against_the_kubernetes_schema(index: int) -> None:
    name, doc = documents()[index]
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "breakage",
    ["misspelt field", "wrong type", "missing required"],
)
def test_the_schema_check_catches_a_broken_manifest(breakage: str) -> None:
    broken = copy.deepcopy(gateway())
    spec = broken["spec"]["template"]["spec"]["containers"][0]
    if breakage == "misspelt field":
        spec["readinessProbe"]["httpGett"] = spec["readinessProbe"].pop("httpGet")
    elif breakage == "wrong type":
        broken["spec"]["replicas"] = "two"
    else:
        del spec["name"]
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_images_are_pinned() -> None:
    for name, spec, _ in pod_specs():
        for c in spec["containers"]:
            image = c["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: {image} is not pinned"


# --- the gateway ------------------------------------------------------------------------------


def test_probes_use_the_health_paths_on_the_served_port() -> None:
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        port = c[probe]["httpGet"]["port"]
        assert ports.get(port, port) == PORT, probe
    args = c["args"]
    assert args[0] == "serve"
    assert args[args.index("--port") + 1] == str(PORT)
    assert args[args.index("--host") + 1] == "0.0.0.0"


def test_every_container_has_requests_and_limits() -> None:
    for name, spec, _ in pod_specs():
        for c in spec["containers"]:
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert {"cpu", "memory"} <= set(resources["limits"]), name


def test_the_gateway_runs_non_root_on_a_read_only_root() -> None:
    spec = gateway()["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's user (docker/Dockerfile)
    assert container()["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert {"/etc/triage", "/var/lib/triage", "/tmp"} <= mounts  # the only places it writes


def test_selectors_select_their_pods() -> None:
    for workload in objects("Deployment") + objects("StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects(workload["spec"]["selector"]["matchLabels"], labels)
    for service in objects("Service"):
        matched = [
            n for n, _, labels in pod_specs() if selects(service["spec"]["selector"], labels)
        ]
        assert len(matched) == 1, f"service/{service['metadata']['name']} selects {matched}"
    pods = gateway()["spec"]["template"]["metadata"]["labels"]
    pdb = one("PodDisruptionBudget", "triage")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pods)
    others = [n for n, _, labels in pod_specs() if n != "triage"]
    assert not any(
        selects(pdb["spec"]["selector"]["matchLabels"], labels)
        for n, _, labels in pod_specs()
        if n in others
    )


def test_the_pdb_and_hpa_fit_the_deployment() -> None:
    pdb = one("PodDisruptionBudget", "triage")["spec"]
    hpa = one("HorizontalPodAutoscaler", "triage")["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "triage")
    # A PDB that needs every replica would block node drains forever.
    assert pdb["minAvailable"] < hpa["minReplicas"] <= gateway()["spec"]["replicas"] + 1
    assert hpa["maxReplicas"] > hpa["minReplicas"]


def test_the_config_map_is_mounted_where_serve_reads_it() -> None:
    c = container()
    config_path = c["args"][c["args"].index("--config") + 1]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    volume = next(
        v for v in gateway()["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    assert volume["configMap"]["name"] == "triage-config"
    assert config_path == f"{mount['mountPath']}/config.yaml"


# --- config and secrets -----------------------------------------------------------------------


def test_every_secret_the_pods_name_exists() -> None:
    keys = set(secret_data())
    for name, spec, _ in pod_specs():
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "triage-secrets" and ref["key"] in keys, name
            for source in c.get("envFrom", []):
                assert source["secretRef"]["name"] == "triage-secrets", name


def test_every_env_reference_of_the_config_is_a_secret_key() -> None:
    refs = set(re.findall(r"os\.environ/([A-Za-z_][A-Za-z0-9_]*)", triage_config_text()))
    assert refs, "the config reads no secret: keys would be written in the ConfigMap"
    assert refs <= set(secret_data()), refs - set(secret_data())
    assert not re.search(r"\bsk-[A-Za-z0-9]", triage_config_text())


def test_the_config_map_holds_a_valid_triage_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(triage_config_text(), encoding="utf-8")
    config = load_config(path, secret_data())
    assert config.server.host == "0.0.0.0"
    assert config.server.port == PORT
    assert config.state.backend == "redis"
    assert config.triage.ledger.backend == "postgres"


def test_the_store_and_ledger_addresses_name_their_services() -> None:
    services = {s["metadata"]["name"]: s for s in objects("Service")}
    for key, service in (
        ("TRIAGE_STATE_URL", "triage-valkey"),
        ("TRIAGE_LEDGER_DSN", "triage-postgres"),
    ):
        address = secret_data()[key]
        host_port = address.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.split(":")
        assert host == service
        assert int(port) in {p["port"] for p in services[service]["spec"]["ports"]}
