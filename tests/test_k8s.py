"""The Kubernetes manifests (infra/k8s) checked without a cluster, as `kubectl kustomize` renders them.

- The base and every overlay render, and pass `kubernetes-validate --strict` (the API's own schemas, unknown
  fields refused).
- Every Deployment's and Job's containers load their settings from the environment their pod gets: the ConfigMap
  and Secret entries they name, their own `env`, and the service-link variables Kubernetes injects for every
  Service in the namespace (`AUTH_PORT=tcp://10.96.0.11:3001`, ...; on by default, off with `enableServiceLinks:
  false`, and the `kubernetes` Service's always), both the Services the manifests define and the ones their URLs
  name (PostgreSQL, RabbitMQ, ...).
- Every Deployment's containers have a readiness probe on `/ready` (red until the schema is at the code's head) and
  a liveness probe on `/health`.
"""

import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from auth.settings import AuthSettings
from blog.settings import BlogSettings
from comm.settings import CommSettings
from comment.settings import CommentSettings
from gateway.settings import GatewaySettings
from user.settings import UserSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"
SETTINGS: dict[str, type[CommSettings]] = {
    "auth": AuthSettings,
    "blog": BlogSettings,
    "user": UserSettings,
    "comment": CommentSettings,
    "gateway": GatewaySettings,
}
KUSTOMIZATIONS = ("base", *sorted(f"overlays/{p.parent.name}" for p in K8S.glob("overlays/*/kustomization.yaml")))
IMAGE = re.compile(r"^(?:.*/)?blog-platform/(?P<app>[a-z]+)(?::[\w.-]+)?$")


# ---- rendering -----------------------------------------------------------------------------------------------------


@cache
def kubectl() -> str:
    """kubectl with a kustomize of v5 or later (`labels:`, components); the suite skips these tests without one."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (.ci/run installs it from Debian's packages)")
    version = subprocess.run([found, "version", "--client"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Kustomize Version: v(\d+)", version)
    if not match or int(match[1]) < 5:
        pytest.skip(f"this kubectl's kustomize is older than v5: {version.strip()!r}")
    return found


@cache
def rendered(kustomization: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize infra/k8s/<kustomization>`, as a tuple of resources."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / kustomization)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(resources: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources if doc["kind"] == kind}


def pod_specs(resources: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`<Kind>/<name>`, pod spec) of every workload."""
    for doc in resources:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield f"CronJob/{doc['metadata']['name']}", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def app_containers(resources: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(workload, app, container, pod spec) of every container running one of the platform's images."""
    for workload, spec in pod_specs(resources):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            match = IMAGE.match(container["image"])
            if match:
                yield workload, match["app"], container, spec


# ---- the environment a pod gets ------------------------------------------------------------------------------------


def service_link_variables(name: str, ip: str, ports: list[dict[str, Any]]) -> dict[str, str]:
    """What the kubelet injects for one Service (its `FromServices`): `<NAME>_SERVICE_HOST`, `<NAME>_PORT`, ..."""
    prefix = name.upper().replace("-", "_")
    first = ports[0]
    variables = {
        f"{prefix}_SERVICE_HOST": ip,
        f"{prefix}_SERVICE_PORT": str(first["port"]),
        f"{prefix}_PORT": f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}",
    }
    for port in ports:
        protocol = port.get("protocol", "TCP")
        if "name" in port:
            variables[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        stem = f"{prefix}_PORT_{port['port']}_{protocol}"
        variables |= {
            stem: f"{protocol.lower()}://{ip}:{port['port']}",
            f"{stem}_PROTO": protocol.lower(),
            f"{stem}_PORT": str(port["port"]),
            f"{stem}_ADDR": ip,
        }
    return variables


def referenced_services(values: Mapping[str, str]) -> dict[str, int]:
    """Services the settings' URLs name by a bare host (`rabbitmq:5672`, `postgres-rw:5432`), with their ports."""
    found = {}
    for value in values.values():
        for url in re.findall(r"\b[a-z][a-z0-9+]*://\S+", value):
            parts = urlsplit(url)
            if parts.hostname and "." not in parts.hostname and parts.port:
                found[parts.hostname] = parts.port
    return found


def namespace_services(resources: tuple[dict[str, Any], ...]) -> dict[str, list[dict[str, Any]]]:
    """Every Service a pod of this namespace sees: the manifests' own, those the settings name, `kubernetes`."""
    services = {
        name: doc["spec"]["ports"]
        for name, doc in of_kind(resources, "Service").items()
        if doc["spec"].get("clusterIP") != "None"  # headless Services get no variables
    }
    for name, port in referenced_services(config_values(resources)).items():
        services.setdefault(name, [{"name": "main", "port": port}])
    return services


def config_values(resources: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """Every value of every ConfigMap and Secret (decoded)."""
    values = {}
    for doc in resources:
        if doc["kind"] == "ConfigMap":
            values |= {f"{doc['metadata']['name']}/{k}": v for k, v in doc.get("data", {}).items()}
        elif doc["kind"] == "Secret":
            values |= {f"{doc['metadata']['name']}/{k}": v for k, v in secret_data(doc).items()}
    return values


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return data | secret.get("stringData", {})


def pod_environment(resources: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it, service links included whatever the pod says:
    `envFrom`, then `env` (later wins), then each service-link variable not already set."""
    configmaps, secrets = of_kind(resources, "ConfigMap"), of_kind(resources, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= configmaps[source["configMapRef"]["name"]].get("data", {})
        else:
            env |= secret_data(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_data(secrets[ref["name"]])[ref["key"]]
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = configmaps[ref["name"]]["data"][ref["key"]]
    links: dict[str, str] = {}
    for index, (name, ports) in enumerate(sorted(namespace_services(resources).items())):
        links |= service_link_variables(name, f"10.96.0.{index + 10}", ports)
    links |= service_link_variables("kubernetes", "10.96.0.1", [{"name": "https", "port": 443}])
    return env | {key: value for key, value in links.items() if key not in env}


def load_settings(app: str, environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> CommSettings:
    """The app's settings built from `environment` alone, as in its container."""
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            patch.delenv(key)
        for key, value in environment.items():
            patch.setenv(key, value)
        return SETTINGS[app]()


# ---- the tests -----------------------------------------------------------------------------------------------------


def test_the_service_links_are_what_the_kubelet_injects() -> None:
    """The variables of the kubelet's own documentation example, for a Service `redis-primary` on 6379."""
    ports = [{"name": "redis", "port": 6379, "protocol": "TCP"}]
    assert service_link_variables("redis-primary", "10.0.0.11", ports) == {
        "REDIS_PRIMARY_SERVICE_HOST": "10.0.0.11",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_REDIS": "6379",
        "REDIS_PRIMARY_PORT": "tcp://10.0.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.0.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.0.0.11",
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_manifests_pass_the_api_schemas_strictly(kustomization: str, tmp_path: Path) -> None:
    """`kubernetes-validate --strict`: every resource against the Kubernetes API's schema, unknown fields refused."""
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered(kustomization)))
    validate = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run(
        [str(validate), "--strict", "--quiet", str(manifest)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_deployment_is_probed_for_readiness_and_liveness(kustomization: str) -> None:
    deployments = of_kind(rendered(kustomization), "Deployment")
    assert set(deployments) >= set(SETTINGS)
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {port["name"] for port in container.get("ports", [])}
            for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
                check = container.get(probe, {}).get("httpGet", {})
                assert check.get("path") == path, f"{name}/{container['name']}: {probe}"
                assert check.get("port") in ports, f"{name}/{container['name']}: {probe} on a port it does not open"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_app_container_loads_its_settings_in_the_environment_its_pod_gets(
    kustomization: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = rendered(kustomization)
    seen = set()
    for workload, app, container, _ in app_containers(resources):
        environment = pod_environment(resources, container)
        assert "AUTH_PORT" in environment  # the links are there: auth's Service is in every namespace of ours
        settings = load_settings(app, environment, monkeypatch)
        assert settings.service_name == app, workload
        for port in container.get("ports", [])[:1]:
            assert settings.listen_port == port["containerPort"], workload
            assert settings.listen_host == "0.0.0.0", workload
        seen.add(app)
    assert seen == set(SETTINGS)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_no_pod_gets_service_links(kustomization: str) -> None:
    """The apps find each other by DNS; the injected variables are only noise (and a setting's name away from
    a crash), so every pod turns them off."""
    specs = dict(pod_specs(rendered(kustomization)))
    assert specs
    assert {workload for workload, spec in specs.items() if spec.get("enableServiceLinks") is not False} == set()
