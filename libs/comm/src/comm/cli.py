"""The command line every service shares: `python -m <service> migrate | serve [--migrate]`.

A service's `__main__` calls `main(...)` with its package name, its settings and any commands of its own
(e.g. auth's `grant-role`). `serve` runs uvicorn on the app factory `<package>.main:create_app`.
"""

import argparse
import asyncio
import logging
import logging.config
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

import uvicorn

from comm.db import ensure_database, migrate
from comm.errors import AppError
from comm.logs import LogFormat, log_config
from comm.settings import Environment
from comm.telemetry import install_log_trace_ids

log = logging.getLogger(__name__)


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
        uvicorn.run(
            f"{package}.main:create_app",
            factory=True,
            host=current.listen_host,
            port=current.listen_port,
            log_level=current.log_level.lower(),
            log_config=logs,
            access_log=current.access_log,
            proxy_headers=False,  # forwarded headers are the app's to trust or not (the gateway's trusted_proxies)
        )
    elif args.command != "migrate":
        try:
            asyncio.run((commands or {})[args.command][1](args))
        except AppError as exc:  # a refusal, not a crash: say why, no traceback
            parser.exit(1, f"{parser.prog} {args.command}: {exc.detail}\n")


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
