"""`GET /health` (liveness: the process answers) and `GET /ready` (readiness: its dependencies answer, its schema
is migrated)."""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from comm.db import Schema, current_revision
from comm.routing import add_routes

ReadyCheck = Callable[[], Awaitable[object]]


def add_health_routes(app: FastAPI, *, checks: Mapping[str, ReadyCheck], timeout: float = 2.0) -> None:
    """Mount both probes; `/ready` runs every check concurrently, each within `timeout` seconds."""
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", summary="Readiness", responses={503: {"description": "a dependency is not ready"}})
    async def ready() -> JSONResponse:
        results = await asyncio.gather(*(_run(check, limit=timeout) for check in checks.values()))
        report = dict(zip(checks, results, strict=True))
        status = 200 if all(result == "ok" for result in results) else 503
        return JSONResponse({"status": "ok" if status == 200 else "unavailable", "checks": report}, status)

    add_routes(app, router, last=True)  # the service's own routes go ahead of them: probes are not the hot path


async def _run(check: ReadyCheck, *, limit: float) -> str:
    try:
        async with asyncio.timeout(limit):
            await check()
    except NotReady as exc:
        return f"failed: {exc}"
    except Exception as exc:  # a readiness probe reports failures, it does not raise them
        return f"failed: {type(exc).__name__}"
    return "ok"


class NotReady(Exception):
    """Raised by a check with the reason `/ready` reports (`"failed: <reason>"`)."""


def database_check(engine: AsyncEngine, *, schema: Schema) -> ReadyCheck:
    """Ready when the database answers and its schema is one this code can use: at its migrations' head (or at a
    later release's, after a rollback). So a pod takes no traffic before its migrations have run."""

    async def check() -> None:
        current = await current_revision(engine)
        if not schema.usable(current):
            raise NotReady(f"schema at {current or 'no revision'}, this code needs {schema.head}")

    return check


class Worker(Protocol):
    """A relay or consumer: started and stopped in the lifespan, reporting its own health."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def problem(self) -> str | None: ...


def workers_check(workers: Callable[[], Iterable[Worker]]) -> ReadyCheck:
    """Ready when no relay or consumer is dead, restarting or stuck (comm.events.supervision)."""

    async def check() -> None:
        if problems := [problem for worker in workers() if (problem := worker.problem())]:
            raise NotReady("; ".join(problems))

    return check
