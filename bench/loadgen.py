"""Load generation for the HTTP benchmarks: wrk (closed loop) and an aiohttp generator child (open or closed loop)."""

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Headers = Mapping[str, str]


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per request, per app (bench/cost.py's closed loop)
    kernel_ms: float = 0.0  # of which in the kernel, summed over the apps


def pinned(core: int) -> list[str]:
    """The command prefix that runs a process on `core`, when there are two cores and taskset to pin with."""
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str,
    headers: Headers | None = None,
    *,
    seconds: float,
    connections: int,
    pin: list[str],
    timeout: float | None = None,
    body: object = None,
) -> Result:
    """Closed loop: wrk with one thread and `connections` connections (`timeout`: wrk's, 2 s unless given); a POST
    of `body` as JSON when one is given."""
    flags = [item for name, value in (headers or {}).items() for item in ("-H", f"{name}: {value}")]
    command = [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    command += [*(["--timeout", f"{timeout:g}s"] if timeout is not None else []), "--latency", *flags]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:  # wrk sends a body only from a Lua script
            script.write(f"wrk.method = 'POST'\nwrk.body = {_lua_string(json.dumps(body))}\n")
            script.write("wrk.headers['Content-Type'] = 'application/json'\n")
            script.flush()
            command += ["-s", script.name]
        process = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    out = process.stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if process.returncode != 0 or len(latency) != 2:
        raise RuntimeError(f"unexpected wrk output:\n{out}{process.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, _ms(latency["50"]), _ms(latency["99"]), (int(errors.group(1)) if errors else 0) + socket_errors)


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


class Generator:
    """The aiohttp load generator: one child process (this file) pinned by `pin`, one job per line on stdin."""

    def __init__(self, pin: list[str]) -> None:
        command = [*pin, sys.executable, __file__]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(
        self,
        url: str,
        headers: Headers | None = None,
        *,
        seconds: float,
        rate: float | None = None,
        connections: int = 32,
        body: object = None,
    ) -> Result:
        """Open loop at `rate` req/s, or closed loop over `connections` when no rate is given; a POST of `body` as
        JSON when one is given."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        job = {
            "url": url,
            "headers": dict(headers or {}),
            "seconds": seconds,
            "rate": rate,
            "connections": connections,
            "body": body,
        }
        self._process.stdin.write(json.dumps(job) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return Result(**json.loads(line))

    def close(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _request(session: aiohttp.ClientSession, url: str, body: object) -> Any:
    return session.get(url) if body is None else session.post(url, json=body)


async def _open_loop(url: str, headers: Headers, *, rate: float, seconds: float, body: object = None) -> Result:
    """Send at a fixed rate; latency counts from the scheduled send time (no coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), headers=headers) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with _request(session, url, body) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append(time.monotonic() - scheduled)
            errors += not ok

        start = time.monotonic()
        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            tasks.append(asyncio.create_task(one(scheduled)))
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        errors += len(pending)
    return _summary(latencies, errors, seconds=time.monotonic() - start)


async def _closed_loop(url: str, headers: Headers, *, connections: int, seconds: float, body: object = None) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            while (sent := time.monotonic()) < deadline:
                async with _request(session, url, body) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.monotonic() - sent)
                    errors += response.status != 200

        await asyncio.gather(*(worker() for _ in range(connections)))
    return _summary(latencies, errors, seconds=seconds)


def _summary(latencies: list[float], errors: int, *, seconds: float) -> Result:
    if len(latencies) < 2:
        return Result(0.0, float("nan"), float("nan"), errors)
    cuts = statistics.quantiles(latencies, n=100)
    return Result(len(latencies) / seconds, cuts[49] * 1000, cuts[98] * 1000, errors)


def generator_main() -> None:
    """The generator child: run each job read from stdin, answer with its Result as one JSON line."""
    with contextlib.suppress(KeyboardInterrupt):
        for line in sys.stdin:
            job = json.loads(line)
            url, headers, seconds, body = job["url"], job["headers"], job["seconds"], job["body"]
            if job["rate"]:
                result = asyncio.run(_open_loop(url, headers, rate=job["rate"], seconds=seconds, body=body))
            else:
                run = _closed_loop(url, headers, connections=job["connections"], seconds=seconds, body=body)
                result = asyncio.run(run)
            print(json.dumps(result.__dict__), flush=True)


if __name__ == "__main__":
    generator_main()
