"""Test support shared by every suite: real servers and real databases, isolated by unique names.

Tests use the real PostgreSQL and RabbitMQ; each run creates what it needs under a unique name and
drops it afterwards, so suites can run side by side on the shared servers.

This is the platform's test support, not only the library's: `local_platform` starts the platform's five services
(named here, with their databases and consumer queues) as local processes, for the end-to-end tests and the benchmarks.
"""

import asyncio
import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import uvicorn
from pydantic import AliasChoices, BaseModel, TypeAdapter
from pydantic_settings import BaseSettings

from comm.events.broker import queue_name
from comm.events.testing import delete_topology
from comm.keys import encode_private_key, format_public_keys, generate_key
from comm.settings import CommSettings
from comm.tokens import InternalTokens

ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def env_names(settings: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the environment variable pydantic-settings reads it from (alias, else prefix + name)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = {}
    for name, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names[name] = str(alias.choices[0]).upper()
        elif isinstance(alias, str):
            names[name] = alias.upper()
        else:
            names[name] = f"{prefix}{name}".upper()
    return names


def assert_matches_model(answer: Any, model: type[BaseModel]) -> None:
    """`answer` (parsed JSON) is what `model` writes: its JSON schema in serialization mode, no key beyond its
    fields. For the hot reads built as plain data (comm.answers), whose model is the definition of their shape."""
    import jsonschema  # a dev dependency: this module is also imported where only comm's own are installed (db.py)

    jsonschema.validate(answer, _closed(TypeAdapter(model).json_schema(mode="serialization")))


def _closed(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists its properties."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in closed:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def unique_name(prefix: str) -> str:
    """A name no other test run uses: `prefix_<12 hex>`."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def admin_database_url() -> str:
    return os.environ.get("TEST_DATABASE_ADMIN_URL", ADMIN_DATABASE_URL)


@asynccontextmanager
async def temporary_database(prefix: str = "test") -> AsyncIterator[str]:
    """Create an empty database, yield its SQLAlchemy asyncpg URL, drop it on exit."""
    name = unique_name(prefix)
    admin = admin_database_url()
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def free_port() -> int:
    """A TCP port that was free a moment ago (for servers that must be told their port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(app: Any, *, port: int = 0, **config: Any) -> AsyncIterator[str]:
    """Run an ASGI app under a real uvicorn server in this event loop; yield its base URL.

    As `python -m <service> serve` does, uvicorn trusts no forwarded header (its default trusts 127.0.0.1)."""
    config = {"proxy_headers": False, **config}
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        await task


# ---- The platform as local processes -------------------------------------------------------------------------------

SERVICES = ("auth", "user", "blog", "comment", "gateway")
WITH_DATABASE = ("auth", "user", "blog", "comment")
QUEUES = {  # concerns, under the prefix
    "user": ("profile-sync", "comment-counts"),
    "blog": ("authors",),
    "comment": ("post-cleanup", "authors"),
}


def queue_names(prefix: str) -> list[str]:
    """The consumer queues the apps declare under `<SERVICE>_QUEUE_PREFIX=<prefix>.<service>`."""
    return [queue_name(f"{prefix}.{service}", concern) for service, concerns in QUEUES.items() for concern in concerns]


@dataclass(kw_only=True)
class LocalApps:
    """The five apps as child processes, one log file each in `logs`; `url(service)` reaches one directly.

    Only processes started here are stopped or killed (by pid). Subclasses override `command` to launch an app
    otherwise (pinned to a core, through a wrapper) and add what their runs need.
    """

    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    ready_within: float = 60.0  # seconds; a first start migrates a fresh database
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def metrics_url(self, service: str) -> str:
        """Where an app serves its metrics: on `<SERVICE>_METRICS_PORT` when it has one (a public app), else its own."""
        port = self.env.get(f"{service.upper()}_METRICS_PORT")
        return f"http://127.0.0.1:{port}/metrics" if port else f"{self.url(service)}/metrics"

    @property
    def gateway(self) -> str:
        """The public API's base URL."""
        return f"{self.url('gateway')}/api"

    def command(self, service: str) -> list[str]:
        """How one app is launched: as `make run` launches it, migrating its database first."""
        return [sys.executable, "-m", service, "serve", *(["--migrate"] if service in WITH_DATABASE else [])]

    def environment(self, service: str) -> dict[str, str]:
        """The environment one app is launched with: the platform's."""
        return self.env

    async def start(self, service: str) -> None:
        """Start one app and wait until it answers /ready."""
        with (self.logs / f"{service}.log").open("ab") as log:
            self.processes[service] = await asyncio.create_subprocess_exec(
                *self.command(service), env=self.environment(service), stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        await self.wait_ready(service)

    async def wait_ready(self, service: str) -> None:
        """Until /ready answers 200; an app that exits meanwhile fails at once, with the end of its log."""
        log = self.logs / f"{service}.log"
        deadline = time.monotonic() + self.ready_within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.processes[service].returncode is not None:
                    raise RuntimeError(f"{service} exited (log: {log}):\n{log.read_text(errors='replace')[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url(service)}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{service} not ready within {self.ready_within:g} s (log: {log})")

    async def kill(self, service: str) -> None:
        """SIGKILL one app: a crash, no graceful shutdown."""
        process = self.processes.pop(service)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def stop_all(self) -> None:
        """SIGTERM to every app, a graceful shutdown of all at once; SIGKILL to any still running after 15 s."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self.processes.clear()


def internal_token_keys(apps: tuple[str, ...]) -> dict[str, str]:
    """A new key per app and the public key line (comm.keys): a stack whose tokens no other stack accepts."""
    keys = {app: generate_key() for app in apps}
    return {
        **{f"{app.upper()}_INTERNAL_TOKEN_KEY": encode_private_key(key) for app, key in keys.items()},
        "INTERNAL_TOKEN_PUBLIC_KEYS": format_public_keys((app, key.public_key()) for app, key in keys.items()),
    }


def tokens_of(env: Mapping[str, str], app: str) -> InternalTokens:
    """The internal tokens `app` mints and verifies in a stack started with `env` (to call a service as it)."""
    return InternalTokens.from_settings(
        CommSettings(
            service_name=app,
            internal_token_key=env[f"{app.upper()}_INTERNAL_TOKEN_KEY"],
            internal_token_public_keys=env["INTERNAL_TOKEN_PUBLIC_KEYS"],
        )
    )


def platform_environment(
    *,
    databases: Mapping[str, str],
    ports: Mapping[str, int],
    exchange: str,
    prefix: str,
    broker_url: str,
    logs: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The apps' environment: this process's, without any `<SERVICE>_` setting of its own, wired to these databases,
    ports, exchange and queue prefix; `extra` last, so a run can add or override settings."""
    own = tuple(f"{service.upper()}_" for service in SERVICES)
    env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
    env.update(
        {
            "RABBITMQ_URL": broker_url,
            "EVENTS_EXCHANGE": exchange,
            **internal_token_keys(SERVICES),
            "AUTH_DEV_SIGNING_KEY_FILE": str(logs / "auth-signing-key.pem"),
            "GATEWAY_METRICS_PORT": str(free_port()),
            **{f"{service.upper()}_QUEUE_PREFIX": f"{prefix}.{service}" for service in QUEUES},
        }
    )
    for service in SERVICES:
        env[f"{service.upper()}_SERVICE_URL"] = f"http://127.0.0.1:{ports[service]}"
        env[f"{service.upper()}_LISTEN_PORT"] = str(ports[service])
        env[f"{service.upper()}_LISTEN_HOST"] = "127.0.0.1"
    for service, url in databases.items():
        env[f"{service.upper()}_DATABASE_URL"] = url
    env.update(extra or {})
    return env


AppsT = TypeVar("AppsT", bound=LocalApps)


@asynccontextmanager
async def local_platform(
    apps: Callable[..., AppsT],
    *,
    name: str,
    logs: Path,
    broker_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[AppsT]:
    """The five apps started together on temporary databases, free ports, a unique exchange and queue prefix (all
    named after `name`); on exit the apps stopped, the exchange and queues deleted, the databases dropped.

    `apps(env=, ports=, logs=)` makes the LocalApps (a subclass, or a partial that adds its fields); `broker_url` is
    where the apps reach RabbitMQ (a proxy, say); the topology is deleted on the broker itself.
    """
    rabbitmq_url = CommSettings().rabbitmq_url
    exchange, prefix = unique_name(f"{name}.events"), unique_name(name)
    async with contextlib.AsyncExitStack() as resources:
        databases = {s: await resources.enter_async_context(temporary_database(f"{name}_{s}")) for s in WITH_DATABASE}
        ports = {service: free_port() for service in SERVICES}
        env = platform_environment(
            databases=databases,
            ports=ports,
            exchange=exchange,
            prefix=prefix,
            broker_url=broker_url or rabbitmq_url,
            logs=logs,
            extra=extra_env,
        )
        platform = apps(env=env, ports=ports, logs=logs)
        try:
            # A task group: when one app fails to start, the others stop waiting for theirs (and are stopped below).
            async with asyncio.TaskGroup() as starting:
                for service in SERVICES:
                    starting.create_task(platform.start(service))
            yield platform
        finally:
            await platform.stop_all()
            await delete_topology(url=rabbitmq_url, exchange=exchange, queues=queue_names(prefix))
