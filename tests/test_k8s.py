"""The Kubernetes manifests (infra/k8s) checked without a cluster, as `kubectl kustomize` renders them.

- The base and every overlay render (in a copy of infra/k8s whose secret files `make k8s-secrets` wrote, as on a
  deployer's machine), and pass `kubernetes-validate --strict` (the API's own schemas, unknown
  fields refused).
- Every Deployment's and Job's containers load their settings from the environment their pod gets: the ConfigMap
  and Secret entries they name, their own `env`, and the service-link variables Kubernetes injects for every
  Service in the namespace (`AUTH_PORT=tcp://10.96.0.11:3001`, ...; on by default, off with `enableServiceLinks:
  false`, and the `kubernetes` Service's always), both the Services the manifests define and the ones their URLs
  name (PostgreSQL, RabbitMQ, ...).
- Every Deployment's containers have a readiness probe on `/ready` (red until the schema is at the code's head) and
  a liveness probe on `/health`.
- Nothing secret is committed: every Secret comes from a generator reading git-ignored files; each app gets its own
  Secret with only what it uses, and the passwords in its URLs are the ones its PostgreSQL role and RabbitMQ user get.
"""

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from auth.settings import AuthSettings
from auth.signing import load_signing_key
from blog.settings import BlogSettings
from comm.settings import CommSettings
from comm.testing import env_names
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


def make_secrets() -> ModuleType:
    """infra/k8s/make_secrets.py, a script (`make k8s-secrets`), as a module."""
    spec = importlib.util.spec_from_file_location("make_secrets", K8S / "make_secrets.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def deployer_copy() -> Path:
    """infra/k8s copied without anyone's secret files, then `make k8s-secrets` run in the copy."""
    copy = Path(tempfile.mkdtemp(prefix="k8s-")) / "k8s"
    shutil.copytree(K8S, copy, ignore=lambda folder, names: [n for n in names if Path(folder).name == "secrets"])
    make_secrets().generate(copy / "base" / "secrets", postgres_host="postgres-rw", rabbitmq_host="rabbitmq")
    return copy


@cache
def rendered(kustomization: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize infra/k8s/<kustomization>`, as a tuple of resources."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(deployer_copy() / kustomization)], capture_output=True, text=True, check=False
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
    """The apps on `/ready` (red until the schema is at head) and `/health`; anything else (Redis) some probe."""
    deployments = of_kind(rendered(kustomization), "Deployment")
    assert set(deployments) >= set(SETTINGS)
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {port["name"] for port in container.get("ports", [])}
            for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
                assert probe in container, f"{name}/{container['name']}: no {probe}"
                if name not in SETTINGS:
                    continue
                check = container[probe].get("httpGet", {})
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
        assert settings.environment == "production", workload
        assert settings.weak_secrets() == [], workload  # what production refuses to start with
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


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_setting_without_a_usable_default_is_set(kustomization: str) -> None:
    """A default naming this machine (localhost) cannot work in a pod; nor can a name no setting reads (a typo)."""
    resources = rendered(kustomization)
    for workload, app, container, _ in app_containers(resources):
        environment = pod_environment(resources, container)
        names = env_names(SETTINGS[app])
        for field, info in SETTINGS[app].model_fields.items():
            if field == "listen_host" and container["args"][:1] != ["serve"]:
                continue  # `migrate` listens on nothing
            if (app, field) == ("gateway", "rabbitmq_url"):
                continue  # a shared setting the gateway never uses: it publishes and consumes nothing
            default = info.default.get_secret_value() if hasattr(info.default, "get_secret_value") else info.default
            if isinstance(default, str) and ("localhost" in default or "127.0.0.1" in default):
                assert names[field] in environment, f"{workload}/{container['name']}: {names[field]}"
        own = {item["name"] for item in container.get("env", [])}
        sources = {key for source in container.get("envFrom", []) for key in env_from(resources, source)}
        assert sorted((own | sources) - KNOWN) == [], f"{workload}/{container['name']}"


# Every variable some app reads (a shared ConfigMap carries each service's own, `BLOG_DATABASE_POOL_SIZE`, ...).
KNOWN = {name for settings in SETTINGS.values() for name in env_names(settings).values()} | {
    "GATEWAY_TRUSTED_PROXIES",  # the peers whose X-Forwarded-For the gateway believes
}


def env_from(resources: tuple[dict[str, Any], ...], source: dict[str, Any]) -> dict[str, str]:
    if "configMapRef" in source:
        return dict(of_kind(resources, "ConfigMap")[source["configMapRef"]["name"]].get("data", {}))
    return secret_data(of_kind(resources, "Secret")[source["secretRef"]["name"]])


def test_no_secret_value_is_committed() -> None:
    """Every Secret is generated from files under a `secrets/` folder that git ignores; no manifest holds one."""
    committed = subprocess.run(
        ["git", "ls-files", str(K8S)], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert [f for f in committed if "/secrets/" in f] == ["infra/k8s/base/secrets/.gitignore"]
    for name in committed:
        if name.endswith((".yaml", ".yml")):
            for doc in yaml.safe_load_all((ROOT / name).read_text()):
                assert not doc or doc.get("kind") != "Secret", name
                for generator in (doc or {}).get("secretGenerator", []):
                    assert "literals" not in generator, f"{name}: {generator['name']}"
                    for path in [*generator.get("envs", []), *generator.get("files", [])]:
                        source = (ROOT / name).parent / path.split("=")[-1]
                        ignored = subprocess.run(["git", "check-ignore", "-q", str(source)], cwd=ROOT, check=False)
                        assert ignored.returncode == 0, f"{name}: {path} is not git-ignored"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_app_gets_only_its_own_secret(kustomization: str) -> None:
    resources = rendered(kustomization)
    for workload, app, container, _ in app_containers(resources):
        secrets = {source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source}
        assert {re.sub(r"-[a-z0-9]{10}$", "", name) for name in secrets} == {f"{app}-secrets"}, workload
        environment = pod_environment(resources, container)
        assert [key for key in environment if key.endswith("DATABASE_URL")] == (
            [] if app == "gateway" else [f"{app.upper()}_DATABASE_URL"]
        ), workload
    gateway = next(c for _, app, c, _ in app_containers(resources) if app == "gateway")
    assert "RABBITMQ_URL" not in pod_environment(resources, gateway)  # it publishes and consumes nothing


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_apps_urls_carry_the_credentials_their_role_and_user_get(kustomization: str) -> None:
    """The generated `postgres-<service>` and `rabbitmq-<service>` Secrets (what creates the role and the user reads
    them) hold the user and password of the service's URLs, and each service has a role and a user of its own."""
    resources = rendered(kustomization)
    secrets = of_kind(resources, "Secret")
    for _, app, container, _ in app_containers(resources):
        if app == "gateway":
            continue
        environment = pod_environment(resources, container)
        database = urlsplit(environment[f"{app.upper()}_DATABASE_URL"])
        role = secret_data(secrets[f"postgres-{app}"])
        assert secrets[f"postgres-{app}"]["type"] == "kubernetes.io/basic-auth"
        assert (
            (database.username, database.password)
            == (role["username"], role["password"])
            == (
                database.username,
                role["password"],
            )
        )
        assert database.username == f"{app}_app"
        assert database.path == f"/{app}"
        broker = urlsplit(environment["RABBITMQ_URL"])
        user = secret_data(secrets[f"rabbitmq-{app}"])
        assert (broker.username, broker.password) == (user["username"], user["password"]) == (app, user["password"])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_auth_loads_the_signing_key_its_pod_mounts(kustomization: str, tmp_path: Path) -> None:
    resources = rendered(kustomization)
    spec = of_kind(resources, "Deployment")["auth"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    key_file = Path(next(item["value"] for item in container["env"] if item["name"] == "AUTH_SIGNING_KEY_FILE"))
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    pem = secret_data(of_kind(resources, "Secret")[volume["secret"]["secretName"]])[key_file.name]
    (tmp_path / key_file.name).write_text(pem)
    key = load_signing_key(AuthSettings(signing_key_file=tmp_path / key_file.name))
    assert key.curve.name == "secp256r1"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_service_migrates_before_it_serves_on_its_own_port(kustomization: str) -> None:
    """Each pod of a service with a database migrates first (an init container, so re-applying the manifests with a
    new image is all an upgrade takes; no Job whose pod template is immutable), then serves on its Service's port."""
    resources = rendered(kustomization)
    services = of_kind(resources, "Service")
    for app, settings in SETTINGS.items():
        spec = of_kind(resources, "Deployment")[app]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["args"] == ["serve"], app
        (port,) = services[app]["spec"]["ports"]
        assert port["port"] == settings().listen_port, app
        migrations = [(c["image"], c["args"]) for c in spec.get("initContainers", [])]
        assert migrations == ([] if app == "gateway" else [(container["image"], ["migrate"])]), app
    assert of_kind(resources, "Job") == {}


# ---- the production overlay ----------------------------------------------------------------------------------------

PRODUCTION = "overlays/production"
ARGON2_MIB = 19  # auth's argon2_memory_cost_kib / 1024: what one hash or verify holds while it runs


def production() -> tuple[dict[str, Any], ...]:
    return rendered(PRODUCTION)


def app_settings(resources: tuple[dict[str, Any], ...], app: str, monkeypatch: pytest.MonkeyPatch) -> CommSettings:
    """`app`'s settings as its serving container builds them."""
    spec = of_kind(resources, "Deployment")[app]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return load_settings(app, pod_environment(resources, container), monkeypatch)


def test_production_scales_every_app_and_keeps_one_through_a_disruption() -> None:
    resources = production()
    deployments, autoscalers = of_kind(resources, "Deployment"), of_kind(resources, "HorizontalPodAutoscaler")
    budgets = of_kind(resources, "PodDisruptionBudget")
    for app in SETTINGS:
        target = autoscalers[app]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", app)
        assert 2 <= autoscalers[app]["spec"]["minReplicas"] < autoscalers[app]["spec"]["maxReplicas"], app
        assert "replicas" not in deployments[app]["spec"], f"{app}: re-applying would reset the autoscaler's count"
        labels = deployments[app]["spec"]["template"]["metadata"]["labels"]
        selector = budgets[app]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), app
        assert budgets[app]["spec"].get("maxUnavailable") == 1, app
        spread = deployments[app]["spec"]["template"]["spec"]["topologySpreadConstraints"]
        by_node = next(c for c in spread if c["topologyKey"] == "kubernetes.io/hostname")
        assert by_node["labelSelector"]["matchLabels"].items() <= labels.items(), app
        assert "app.kubernetes.io/name" in by_node["matchLabelKeys"], app  # each app spread on its own


def test_production_pods_meet_the_restricted_pod_security_level() -> None:
    """What the "restricted" level checks, for every pod (the namespace enforces it: the API server would refuse)."""
    resources = production()
    (namespace,) = of_kind(resources, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    specs = dict(pod_specs(resources))
    assert {name for name in specs if name.startswith("Deployment/")} >= {f"Deployment/{app}" for app in SETTINGS}
    for workload, spec in specs.items():
        pod = spec.get("securityContext", {})
        assert [key for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)] == [], workload
        assert all("hostPath" not in volume for volume in spec.get("volumes", [])), workload
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            own = container.get("securityContext", {})
            name = f"{workload}/{container['name']}"
            assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, name
            assert own.get("runAsUser", pod.get("runAsUser", 1)) != 0, name
            seccomp = own.get("seccompProfile", pod.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", name
            assert own.get("allowPrivilegeEscalation") is False, name
            assert own.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not own.get("capabilities", {}).get("add"), name
            assert not own.get("privileged"), name


def test_production_exposes_the_gateway_through_the_ingress_and_trusts_only_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resources = production()
    (ingress,) = of_kind(resources, "Ingress").values()
    backends = {
        (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {("gateway", "http")}
    gateway = app_settings(resources, "gateway", monkeypatch)
    environment = pod_environment(
        resources, of_kind(resources, "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"][0]
    )
    proxies = getattr(gateway, "trusted_proxies", None) or environment["GATEWAY_TRUSTED_PROXIES"].split(",")
    assert proxies, "the gateway would see the ingress's address for every client"
    policy = of_kind(resources, "NetworkPolicy")["gateway"]
    (public,) = [rule for rule in policy["spec"]["ingress"] if any(p["port"] == 3000 for p in rule["ports"])]
    assert public["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


POSTGRES_DEFAULT_MAX_CONNECTIONS = 100  # what the base assumes of a PostgreSQL it does not bring


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_connection_budget_fits_postgres(kustomization: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every replica allowed (the autoscaler's maximum, else the Deployment's count) plus a rollout's surge, each
    holding both its pools and the relay's LISTEN connection, plus a migrating init container per surging pod: under
    max_connections (the CloudNativePG cluster's, else PostgreSQL's default) less the reserved and 10 for operators."""
    resources = rendered(kustomization)
    parameters = next(iter(of_kind(resources, "Cluster").values()), {"spec": {"postgresql": {"parameters": {}}}})
    parameters = parameters["spec"]["postgresql"]["parameters"]
    maximum = int(parameters.get("max_connections", POSTGRES_DEFAULT_MAX_CONNECTIONS))
    available = maximum - int(parameters.get("superuser_reserved_connections", 3)) - 10
    autoscalers, deployments = of_kind(resources, "HorizontalPodAutoscaler"), of_kind(resources, "Deployment")
    total = 0
    for app in ("auth", "blog", "user", "comment"):
        settings = app_settings(resources, app, monkeypatch)
        spec = deployments[app]["spec"]
        replicas = autoscalers[app]["spec"]["maxReplicas"] if app in autoscalers else spec["replicas"]
        surge = spec.get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
        surge = -(-replicas * int(surge[:-1]) // 100) if isinstance(surge, str) else surge  # a percentage rounds up
        per_pod = settings.database_pool_size + settings.database_read_pool_size + 1
        total += (replicas + surge) * per_pod + surge * 2  # a migrating init container: ensure_database, Alembic
    assert total <= available, f"{kustomization}: {total} connections for {available}"


def test_production_auth_hashes_inside_its_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A login burst: every Argon2id run allowed at once on top of what auth measured at rest."""
    resources = production()
    settings = app_settings(resources, "auth", monkeypatch)
    assert settings.argon2_memory_cost_kib == ARGON2_MIB * 1024
    (container,) = of_kind(resources, "Deployment")["auth"]["spec"]["template"]["spec"]["containers"]
    limit = mebibytes(container["resources"]["limits"]["memory"])
    assert AUTH_AT_REST_MIB + settings.password_hash_concurrency * ARGON2_MIB <= limit * 0.8


# Peak RSS of each app measured serving (`make bench-memory`, 2026-12-04; docs/operations.md, "Sizing"), in MiB,
# and auth's at rest, before any Argon2id run.
MEASURED_MIB = {"gateway": 123, "auth": 152, "blog": 113, "user": 112, "comment": 123}
AUTH_AT_REST_MIB = 108


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_production_memory_limits_leave_room_over_what_each_app_measured() -> None:
    for workload, app, container, _ in app_containers(production()):
        resources = container["resources"]
        request, limit = mebibytes(resources["requests"]["memory"]), mebibytes(resources["limits"]["memory"])
        assert request >= MEASURED_MIB[app] or container["args"] == ["migrate"], f"{workload}/{container['name']}"
        assert limit >= 1.5 * MEASURED_MIB[app], f"{workload}/{container['name']}"
        assert "cpu" in resources["requests"], f"{workload}/{container['name']}"


def callees(app: str) -> set[str]:
    """The services `app` builds a client for in its main.py (`BlogServiceClient(`, the gateway's `BlogClient(`)."""
    main = (ROOT / "services" / app / "src" / app / "main.py").read_text()
    return {name.lower() for name in re.findall(r"\b(Auth|Blog|User|Comment)(?:Service)?Client\(", main)}


def selects(peer: dict[str, Any], app: str) -> bool:
    return peer == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": app}}}


def test_production_network_policies_deny_by_default_and_allow_each_service_only_its_callers() -> None:
    resources = production()
    policies = of_kind(resources, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert (deny["podSelector"], sorted(deny["policyTypes"]), deny.get("ingress"), deny.get("egress")) == (
        {},
        ["Egress", "Ingress"],
        None,
        None,
    )
    ports = {app: settings().listen_port for app, settings in SETTINGS.items()}
    for app in ("auth", "blog", "user", "comment"):
        callers = {other for other in SETTINGS if app in callees(other)}
        assert callers, app
        (rule,) = [
            r for r in policies[app]["spec"]["ingress"] if all(set(peer) == {"podSelector"} for peer in r["from"])
        ]
        assert [p["port"] for p in rule["ports"]] == [ports[app]], app
        allowed = {other for other in SETTINGS for peer in rule["from"] if selects(peer, other)}
        assert allowed == callers, app
        assert len(rule["from"]) == len(callers), app
    for app in SETTINGS:
        egress = policies[app]["spec"]["egress"]
        reached = {other for rule in egress for peer in rule["to"] for other in SETTINGS if selects(peer, other)}
        assert reached == callees(app), app
        for rule in egress:
            assert rule["to"], f"{app}: an egress rule to anywhere"


def test_production_data_services_are_the_ones_the_apps_urls_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """CloudNativePG's cluster (`<name>-rw` is its primary) with a role per service owning its database, and the
    RabbitMQ cluster (its Service is its name) with three nodes and a user per service, none an administrator."""
    resources = production()
    (cluster,) = of_kind(resources, "Cluster").values()
    (broker,) = of_kind(resources, "RabbitmqCluster").values()
    assert broker["spec"]["replicas"] == 3  # a quorum queue keeps a majority through the loss of a node
    assert cluster["spec"]["instances"] >= 2
    roles = {role["name"]: role for role in cluster["spec"]["managed"]["roles"]}
    databases = {doc["spec"]["name"]: doc["spec"] for doc in of_kind(resources, "Database").values()}
    users = of_kind(resources, "User")
    secrets = of_kind(resources, "Secret")
    for app in ("auth", "blog", "user", "comment"):
        settings = app_settings(resources, app, monkeypatch)
        database = urlsplit(settings.database_url)
        assert database.hostname == f"{cluster['metadata']['name']}-rw", app
        role = roles[str(database.username)]
        assert role["login"] is True
        assert [key for key in ("superuser", "createrole", "createdb") if role.get(key)] == [], app
        assert secret_data(secrets[role["passwordSecret"]["name"]])["password"] == database.password, app
        owned = databases[database.path.lstrip("/")]
        assert (owned["owner"], owned["cluster"]["name"]) == (database.username, cluster["metadata"]["name"]), app
        amqp = urlsplit(settings.rabbitmq_url)
        assert amqp.hostname == broker["metadata"]["name"], app
        user = users[app]["spec"]
        assert secret_data(secrets[user["importCredentialsSecret"]["name"]]) == {
            "username": amqp.username,
            "password": amqp.password,
        }, app
        assert user.get("tags", []) == [], f"{app}: a broker user of an app needs no management tag"
    assert set(databases) == {"auth", "blog", "user", "comment"}


def test_production_broker_topology_is_the_definitions_compose_loads() -> None:
    """The exchanges, queues, bindings and policies of infra/rabbitmq/definitions.json, as topology resources."""
    definitions = json.loads((ROOT / "infra" / "rabbitmq" / "definitions.json").read_text())
    resources = production()

    def specs(kind: str) -> list[dict[str, Any]]:
        found = [doc["spec"] for doc in of_kind(resources, kind).values()]
        assert all(spec["rabbitmqClusterReference"] == {"name": "rabbitmq"} for spec in found), kind
        return found

    exchanges = {
        s["name"]: (s["vhost"], s["type"], s["durable"], s["autoDelete"], s.get("arguments", {}))
        for s in specs("Exchange")
    }
    assert exchanges == {
        e["name"]: (e["vhost"], e["type"], e["durable"], e["auto_delete"], e["arguments"])
        for e in definitions["exchanges"]
    }
    queues = {
        s["name"]: (s["vhost"], s["durable"], {"x-queue-type": s["type"], **s.get("arguments", {})})
        for s in specs("Queue")
    }
    assert queues == {q["name"]: (q["vhost"], q["durable"], q["arguments"]) for q in definitions["queues"]}
    bindings = sorted(
        (s["source"], s["destination"], s["destinationType"], s["routingKey"], json.dumps(s.get("arguments", {})))
        for s in specs("Binding")
    )
    assert bindings == sorted(
        (b["source"], b["destination"], b["destination_type"], b["routing_key"], json.dumps(b["arguments"]))
        for b in definitions["bindings"]
    )
    policies = {s["name"]: (s["pattern"], s["applyTo"], s["priority"], s["definition"]) for s in specs("Policy")}
    assert policies == {
        p["name"]: (p["pattern"], p["apply-to"], p["priority"], p["definition"]) for p in definitions["policies"]
    }


@pytest.mark.parametrize(
    ("app", "queue", "may"),
    [
        ("user", "user.profile-sync", True),
        ("user", "user.profile-sync.dlq", True),
        ("user", "comment.post-cleanup", False),
        ("comment", "comment.post-cleanup.retry", True),
        ("blog", "blog.events.unroutable", True),
        ("blog", "blog.events.parked", False),
    ],
)
def test_production_broker_users_reach_only_their_own_queues(app: str, queue: str, may: bool) -> None:
    (permission,) = [
        doc["spec"]["permissions"]
        for doc in of_kind(production(), "Permission").values()
        if doc["spec"]["userReference"]["name"] == app
    ]
    assert {bool(re.search(permission[kind], queue)) for kind in ("configure", "write", "read")} == {may}


@pytest.mark.parametrize(
    ("app", "routing_key", "may"),
    [
        ("auth", "user.created", True),
        ("comment", "post.deleted", False),
        ("blog", "post.deleted", True),
        ("user", "profile.updated", True),  # the user service publishes its profiles' public face
        ("user", "user.created", False),
    ],
)
def test_production_broker_users_publish_only_their_own_events(app: str, routing_key: str, may: bool) -> None:
    (permission,) = [
        doc["spec"]["permissions"]
        for doc in of_kind(production(), "TopicPermission").values()
        if doc["spec"]["userReference"]["name"] == app
    ]
    assert permission["exchange"] == "blog.events"
    assert bool(re.search(permission["write"], routing_key)) is may


def test_production_broker_users_have_the_permissions_the_definitions_give_them() -> None:
    """The same users and permissions as compose's infra/rabbitmq/definitions.json, which
    tests/test_broker_permissions.py has a real broker enforce."""
    definitions = json.loads((ROOT / "infra" / "rabbitmq" / "definitions.json").read_text())
    resources = production()
    permissions = {
        doc["spec"]["userReference"]["name"]: (doc["spec"]["vhost"], doc["spec"]["permissions"])
        for doc in of_kind(resources, "Permission").values()
    }
    assert permissions == {
        p["user"]: (p["vhost"], {kind: p[kind] for kind in ("configure", "write", "read")})
        for p in definitions["permissions"]
        if p["user"] in permissions
    }
    topics = {
        doc["spec"]["userReference"]["name"]: (doc["spec"]["vhost"], doc["spec"]["permissions"])
        for doc in of_kind(resources, "TopicPermission").values()
    }
    assert topics == {
        t["user"]: (t["vhost"], {kind: t[kind] for kind in ("exchange", "write", "read")})
        for t in definitions["topic_permissions"]
    }
    apps = {user["name"] for user in definitions["users"] if not user["tags"]}
    assert set(of_kind(resources, "User")) == set(permissions) == apps == {"auth", "blog", "user", "comment"}
