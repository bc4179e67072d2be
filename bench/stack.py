"""The HTTP benchmarks' stack: the five apps as `make run` starts them, pinned to one core, and a bare FastAPI app.

The apps are launched exactly as `make run` launches them (`python -m <service> serve [--migrate]`, their own
logging and settings), on temporary databases and a unique exchange and queue prefix, all removed at the end (also
on Ctrl-C). The only differences are where they run (the apps' core, free ports) and the rate limits, raised so a
benchmark's seeding from one address is not refused. `BareApp` is the unit every cost is measured in: one FastAPI
endpoint answering `{"a": 1}`, served by uvicorn as the apps are (uvloop, httptools), without an access log.
"""

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from loadgen import pinned

from comm.testing import LocalApps, free_port, local_platform

APPS_CORE, LOAD_CORE = 0, 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: what its requests cost, whatever else the machine runs."""
    user, system = cpu_split(pid)
    return user + system


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU time a process has used so far in user space and in the kernel (sockets, epoll, scheduling)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS  # utime, stime


@dataclass(kw_only=True)
class Apps(LocalApps):
    """The five apps, as `make run` runs them, on the apps' core."""

    ready_within: float = 120.0  # five apps migrating at once on one core

    def command(self, service: str) -> list[str]:
        return [*pinned(APPS_CORE), *super().command(service)]

    def cpu_seconds(self) -> dict[str, float]:
        spent = {}
        for service, process in self.processes.items():
            with contextlib.suppress(OSError):
                spent[service] = cpu_seconds(process.pid)
        return spent

    def kernel_seconds(self) -> float:
        """The kernel's part of the apps' CPU time so far, summed."""
        spent = 0.0
        for process in self.processes.values():
            with contextlib.suppress(OSError):
                spent += cpu_split(process.pid)[1]
        return spent


@contextlib.asynccontextmanager
async def running_stack(env: Mapping[str, str] | None = None) -> AsyncIterator[Apps]:
    """Temporary databases, a unique exchange and queue prefix, the five apps (with `env` added); all gone on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as logs:
        limits = {
            "GATEWAY_RATE_LIMIT_REGISTER": "10000/minute",
            "GATEWAY_RATE_LIMIT_COMMENT": "10000/minute",
            "GATEWAY_RATE_LIMIT_LOGIN": "10000/minute",
        }
        async with local_platform(Apps, name="bench", logs=Path(logs), extra_env={**limits, **(env or {})}) as apps:
            yield apps


BARE_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def bare() -> dict[str, int]:
    return {"a": 1}
"""


@contextlib.asynccontextmanager
async def bare_app() -> AsyncIterator[tuple[str, int]]:
    """The unit: a bare FastAPI endpoint under uvicorn on the apps' core; yields its URL and pid."""
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as folder:
        await asyncio.to_thread(Path(folder, "bare.py").write_text, BARE_APP)
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "bare:app", "--port", str(port), "--no-access-log"]
        process = await asyncio.create_subprocess_exec(
            *pinned(APPS_CORE), *command, "--log-level", "warning", cwd=folder
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            async with httpx.AsyncClient() as client:
                for _ in range(200):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(url)).status_code == 200:
                            break
                    await asyncio.sleep(0.05)
            yield url, process.pid
        finally:
            process.terminate()
            await process.wait()


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) + f" (1, 5, 15 min; {os.cpu_count()} CPUs)"
