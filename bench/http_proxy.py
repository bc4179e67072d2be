"""Benchmark (make bench-http): a FastAPI proxy on ServiceClient against the backend it proxies, called direct.

Setup, fair on two cores: the backend and the proxy each run in their own uvicorn process, both pinned to core 0
(so a proxied request pays for both, as a gateway and a service sharing a machine would), and the load generator
runs on core 1. One run measures everything, interleaved (direct, proxied, direct, ...), in two modes:

- closed loop: `wrk`, 32 connections, as fast as the server answers: throughput and latency, and the ratio of
  proxied to direct throughput;
- open loop: a fixed rate (by default half the proxy's closed-loop throughput) from a small aiohttp generator in
  its own process; latency is measured from each request's scheduled time, so queueing is not hidden.

`--transports` compares proxies built on other clients (same app, same model validation, only the client differs):
comm (ServiceClient), comm-traced (ServiceClient in an app with setup_telemetry and setup_metrics), aiohttp (raw
ClientSession), httpx-aiohttp (httpx.AsyncClient over httpx_aiohttp.AiohttpTransport), httpx (its default transport).

    uv run python bench/http_proxy.py                             # comm vs direct, under a minute
    uv run python bench/http_proxy.py --transports all --rounds 3 # every client, about two minutes

Short rounds, many of them, and the median: on a shared machine the load of other work comes and goes, and
interleaving spreads it over every target alike. The load average is printed before and after.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from comm.http.client import ServiceClient
from comm.metrics import setup_metrics
from comm.settings import CommSettings
from comm.telemetry import setup_telemetry
from comm.tokens import Identity

TRANSPORTS = ("comm", "comm-traced", "aiohttp", "httpx-aiohttp", "httpx")
BASE_PORT = 18700


class Item(BaseModel):
    id: int
    name: str
    tags: list[str]


# ---- The apps (run in child processes) ---------------------------------------------------------------------------


def backend_app() -> FastAPI:
    """One endpoint with a small JSON answer."""
    app = FastAPI()

    @app.get("/item")
    async def item() -> Item:
        return Item(id=1, name="hello", tags=["a", "b"])

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


Fetch = Callable[[], Awaitable[Item]]


@asynccontextmanager
async def _fetcher(transport: str, backend_url: str) -> AsyncIterator[Fetch]:
    """`GET backend/item` validated into Item, over the client named `transport`."""
    if transport.startswith("comm"):
        settings = CommSettings(service_name="bench-proxy")
        async with ServiceClient(downstream="backend", base_url=backend_url, settings=settings) as client:
            identity = Identity()  # a gateway always sends an internal token
            yield lambda: client.get("/item", response_model=Item, identity=identity)
    elif transport == "aiohttp":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

            async def fetch() -> Item:
                async with session.get(f"{backend_url}/item") as response:
                    return Item.model_validate_json(await response.read())

            yield fetch
    else:
        yield await _httpx_fetcher(transport, backend_url)


async def _httpx_fetcher(transport: str, backend_url: str) -> Fetch:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    if transport == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        client = httpx.AsyncClient(base_url=backend_url, transport=AiohttpTransport(limits=limits))
    else:
        client = httpx.AsyncClient(base_url=backend_url, limits=limits)

    async def fetch() -> Item:
        return Item.model_validate_json((await client.get("/item")).content)

    return fetch  # closed with the process


def proxy_app(transport: str, backend_url: str) -> FastAPI:
    """`GET /proxy` answers what the backend's `/item` answered."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _fetcher(transport, backend_url) as fetch:
            app.state.fetch = fetch
            yield

    app = FastAPI(lifespan=lifespan)
    if transport == "comm-traced":
        setup_telemetry(app, CommSettings(service_name="bench-proxy"))
        setup_metrics(app, "bench-proxy")

    @app.get("/proxy")
    async def proxy() -> Item:
        return await app.state.fetch()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(role: str, port: int, backend_url: str) -> None:
    app = backend_app() if role == "backend" else proxy_app(role, backend_url)
    # Pooled connections must outlive the pauses between rounds, or every client meets connections the server closed.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_keep_alive=60)


# ---- Load generation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, *, seconds: float, connections: int, pin: list[str]) -> Result:
    """Closed loop: wrk with one thread and `connections` connections."""
    command = [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if len(latency) != 2:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, _ms(latency["50"]), _ms(latency["99"]), (int(errors.group(1)) if errors else 0) + socket_errors)


class Generator:
    """This script's own aiohttp load generator: one child process on the load core, one job per line on stdin."""

    def __init__(self, pin: list[str]) -> None:
        command = [*pin, sys.executable, __file__, "load"]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, url: str, *, seconds: float, rate: float | None = None, connections: int = 32) -> Result:
        """Open loop at `rate` req/s, or closed loop over `connections` when no rate is given."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        job = {"url": url, "seconds": seconds, "rate": rate, "connections": connections}
        self._process.stdin.write(json.dumps(job) + "\n")
        self._process.stdin.flush()
        return Result(**json.loads(self._process.stdout.readline()))

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


async def _open_loop(url: str, *, rate: float, seconds: float) -> Result:
    """Send at a fixed rate; latency counts from the scheduled send time (no coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.monotonic() - scheduled) if ok else None
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


async def _closed_loop(url: str, *, connections: int, seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def worker() -> None:
            nonlocal errors
            while (sent := time.monotonic()) < deadline:
                async with session.get(url) as response:
                    await response.read()
                    latencies.append(time.monotonic() - sent) if response.status == 200 else None
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
    for line in sys.stdin:
        job = json.loads(line)
        if job["rate"]:
            result = asyncio.run(_open_loop(job["url"], rate=job["rate"], seconds=job["seconds"]))
        else:
            result = asyncio.run(_closed_loop(job["url"], connections=job["connections"], seconds=job["seconds"]))
        print(json.dumps(result.__dict__), flush=True)


# ---- The run ---------------------------------------------------------------------------------------------------


def _pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def _start(role: str, port: int, backend_url: str) -> subprocess.Popen[bytes]:
    # Errors of an overloaded proxy (httpx's own transport times out under the open-loop rate) would bury the report.
    command = [*_pin(0), sys.executable, __file__, "serve", role, str(port), backend_url]
    return subprocess.Popen(command, stderr=subprocess.DEVNULL)


def _wait_ready(url: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def _rounds(targets: dict[str, str], measure: Callable[[str], Result], rounds: int) -> dict[str, Result]:
    """Interleave targets round by round; keep each target's median round by throughput."""
    runs: dict[str, list[Result]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, url in targets.items():
            runs[name].append(measure(url))
    return {name: sorted(results, key=lambda r: r.rps)[len(results) // 2] for name, results in runs.items()}


def _report(title: str, results: dict[str, Result], *, latency_ratio: bool, skipped: Iterable[str] = ()) -> None:
    direct = results["direct"]
    print(f"\n{title}")
    print(f"  {'target':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'ratio':>9}")
    for name, r in results.items():
        ratio = r.p50_ms / direct.p50_ms if latency_ratio else r.rps / direct.rps
        print(f"  {name:<14}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.errors:>8}{ratio:>9.2f}")
    for name in skipped:
        print(f"  {name:<14}  skipped: its closed-loop throughput is below this rate")
    what = "p50 latency / direct p50" if latency_ratio else "throughput / direct throughput"
    print(f"  (ratio = {what})")


def _start_all(transports: list[str]) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    """The backend and one proxy per transport; the URL each target is measured at."""
    backend_url = f"http://127.0.0.1:{BASE_PORT}"
    targets = {"direct": f"{backend_url}/item"}
    processes = [_start("backend", BASE_PORT, backend_url)]
    for offset, transport in enumerate(transports, start=1):
        processes.append(_start(transport, BASE_PORT + offset, backend_url))
        targets[transport] = f"http://127.0.0.1:{BASE_PORT + offset}/proxy"
    return targets, processes


def run(args: argparse.Namespace) -> None:
    transports = list(TRANSPORTS) if args.transports == "all" else args.transports.split(",")
    targets, processes = _start_all(transports)
    generator = Generator(_pin(1))
    try:
        for url in targets.values():
            _wait_ready(url.rsplit("/", 1)[0])
        # Anything else running on the machine skews every figure: say how busy it was.
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        closed_loop = _closed_loop_tool(generator, connections=args.connections)
        _rounds(targets, lambda url: closed_loop(url, 1.0), rounds=1)  # warm every path up
        closed = _rounds(targets, lambda url: closed_loop(url, args.seconds), rounds=args.rounds)
        title = f"closed loop, {args.connections} connections, median of {args.rounds} x {args.seconds:g} s"
        _report(title, closed, latency_ratio=False)
        rate = args.rate or round(closed[transports[0]].rps / 2, -1)
        # A target that cannot keep up would only queue: its latency grows with the run, it measures nothing.
        able = {name: url for name, url in targets.items() if closed[name].rps >= rate * 1.2}
        opened = _rounds(able, lambda url: generator.run(url, seconds=args.seconds, rate=rate), rounds=args.rounds)
        title = f"open loop at {rate:g} req/s, median of {args.rounds} x {args.seconds:g} s"
        _report(title, opened, latency_ratio=True, skipped=[name for name in targets if name not in able])
        print("\nload average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    finally:
        generator.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _closed_loop_tool(generator: Generator, *, connections: int) -> Callable[[str, float], Result]:
    if shutil.which("wrk"):
        pin = _pin(1)
        return lambda url, seconds: wrk(url, seconds=seconds, connections=connections, pin=pin)
    print("wrk not found (apt-get install -y wrk): the closed loop uses the Python generator, which may cap 'direct'")
    return lambda url, seconds: generator.run(url, seconds=seconds, connections=connections)


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["load"]:
        generator_main()
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--transports", default="comm", help=f"comma-separated of {','.join(TRANSPORTS)}, or all")
        parser.add_argument("--seconds", type=float, default=2, help="length of one measurement")
        parser.add_argument("--rounds", type=int, default=5)
        parser.add_argument("--connections", type=int, default=32)
        parser.add_argument("--rate", type=float, help="open-loop rate (default: half the first proxy's throughput)")
        run(parser.parse_args())


if __name__ == "__main__":
    main()
