"""The command line every service shares: `python -m <service> migrate | serve [--migrate]`.

A service's `__main__` calls `main(...)` with its package name, its settings and any commands of its own
(e.g. auth's `grant-role`). `serve` runs uvicorn on the app factory `<package>.main:create_app`, the heap it
started with frozen (FrozenHeapServer).
"""

import argparse
import asyncio
import contextlib
import gc
import logging
import logging.config
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from comm.db import ensure_database, migrate
from comm.errors import AppError
from comm.logs import LogFormat, log_config
from comm.settings import Environment
from comm.telemetry import install_log_trace_ids

log = logging.getLogger(__name__)

YOUNG_COLLECTION_THRESHOLD = 10_000  # allocations between two collections of the youngest generation (Python's: 700)


class ServiceSettings(Protocol):
    service_name: str
    listen_host: str
    listen_port: int
    log_level: str
    log_format: LogFormat
    access_log: bool
    environment: Environment

    def weak_secrets(self) -> list[str]: ...


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, None]]
Configure = Callable[[argparse.ArgumentParser], None]


def main(
    *,
    package: str,
    settings: Callable[[], ServiceSettings],
    commands: Mapping[str, tuple[Configure, Command]] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse the command line and run one command."""
    install_log_trace_ids()  # before the first record: every line shows its trace (docs/architecture.md §5)
    current = settings()
    logs = log_config(service=current.service_name, level=current.log_level, log_format=current.log_format)
    logging.config.dictConfig(logs)
    _check_secrets(current)
    parser = argparse.ArgumentParser(prog=f"python -m {package}")
    sub = parser.add_subparsers(dest="command", required=True)
    database_url: str | None = getattr(current, "database_url", None)  # the gateway has no database
    serve_parser = sub.add_parser("serve", help="run the HTTP server")
    if database_url is not None:
        sub.add_parser("migrate", help="create the database if missing and apply every migration")
        serve_parser.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    for name, (configure, _) in (commands or {}).items():
        configure(sub.add_parser(name))
    args = parser.parse_args(argv)
    if database_url is not None and (args.command == "migrate" or getattr(args, "migrate", False)):
        asyncio.run(_migrate(package, database_url))
    if args.command == "serve":
        config = uvicorn.Config(
            f"{package}.main:create_app",
            factory=True,
            host=current.listen_host,
            port=current.listen_port,
            log_level=current.log_level.lower(),
            log_config=logs,
            access_log=current.access_log,
            proxy_headers=False,  # forwarded headers are the app's to trust or not (the gateway's trusted_proxies)
        )
        serve(config)
    elif args.command != "migrate":
        try:
            asyncio.run((commands or {})[args.command][1](args))
        except AppError as exc:  # a refusal, not a crash: say why, no traceback
            parser.exit(1, f"{parser.prog} {args.command}: {exc.detail}\n")


def freeze_started_heap() -> None:
    """Set the cyclic garbage collector for a long-running process whose start-up is done.

    - Everything that exists by then (modules, the app, its routes and models, the lifespan's resources: about
      170,000 objects) is frozen, out of the collector's reach. Each full collection walked all of them, about
      80 ms here, and under load they were 14 % of a service's CPU (py-spy --native of blog's read by slug in
      `make bench`: 5.5 % once frozen). What start-up built lives as long as the process, so nothing is lost by
      never scanning it; what requests allocate later is collected as before (`gc.freeze` was made for servers that
      fork; the same move keeps the collector off a heap that never dies).
    - The youngest generation is collected after 10,000 allocations instead of 700: a young collection walks the
      young objects still alive, which under load are the requests in flight whatever the threshold, so it costs
      about the same and runs 14 times less often (the 5.5 % above went below py-spy's 0.1 %). Cyclic garbage waits
      a little longer to be freed: at most 10,000 objects' worth.
    """
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


class FrozenHeapServer(uvicorn.Server):
    """uvicorn's server, which calls `freeze_started_heap` once the app has started: in `serve`, not in the app
    factory, so that tests building many apps in one process do not freeze each one."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        freeze_started_heap()


def serve(config: uvicorn.Config) -> None:
    """What `uvicorn.run` does with one process and no reload, on FrozenHeapServer: exit code 3 if the app did not
    start (its lifespan failed)."""
    server = FrozenHeapServer(config)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down, as in uvicorn.run
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _check_secrets(settings: ServiceSettings) -> None:
    """Refuse to start in production with a missing or development secret (exit 1, naming each); warn in local."""
    weak = settings.weak_secrets()
    if not weak:
        return
    listed = "; ".join(weak)
    if settings.environment == "production":
        sys.exit(f"{settings.service_name}: ENVIRONMENT=production refuses to start: {listed}")
    log.warning("%s: development secrets (refused with ENVIRONMENT=production): %s", settings.service_name, listed)


async def _migrate(package: str, url: str) -> None:
    await ensure_database(url)
    await migrate(package=package, url=url)
    log.info("%s: database is at the latest migration", package)
