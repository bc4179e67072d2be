"""Benchmark (make bench-http): a FastAPI proxy on ServiceClient against the backend it proxies, called direct.

Setup, fair on two cores: the backend and the proxy each run in their own uvicorn process, both pinned to core 0
(so a proxied request pays for both, as a gateway and a service sharing a machine would), and the load generator
runs on core 1. One run measures everything, interleaved (direct, proxied, direct, ...), in two modes:

- closed loop: `wrk`, 32 connections, as fast as the server answers: throughput and latency, and the ratio of
  proxied to direct throughput;
- open loop: a fixed rate (by default half the proxy's closed-loop throughput) from a small aiohttp generator in
  its own process; latency is measured from each request's scheduled time, so queueing is not hidden.

`--transports` compares proxies built on other clients (same app, same model validation, only the client differs):
comm (ServiceClient), comm-traced (ServiceClient in an app with the platform's tracing and metrics), aiohttp (raw
ClientSession), httpx-aiohttp (httpx.AsyncClient over httpx_aiohttp.AiohttpTransport), httpx (its default transport).

    uv run python bench/http_proxy.py                             # comm vs direct, under a minute
    uv run python bench/http_proxy.py --transports all --rounds 3 # every client, about two minutes

Short rounds, many of them, and the median: on a shared machine the load of other work comes and goes, and
interleaving spreads it over every target alike. The load average is printed before and after.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

import aiohttp
import httpx
import uvicorn
from fastapi import FastAPI
from loadgen import Generator, Result, pinned, wrk
from pydantic import BaseModel

from comm.http.client import ServiceClient
from comm.metrics import setup_metrics
from comm.settings import CommSettings
from comm.telemetry import NO_NATIVE_TELEMETRY, TracingMiddleware, tracer_provider
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

    if transport == "comm-traced":
        provider = tracer_provider(CommSettings(service_name="bench-proxy"))
        app = FastAPI(lifespan=lifespan, telemetry=NO_NATIVE_TELEMETRY)
        setup_metrics(app, "bench-proxy")
        app.add_middleware(TracingMiddleware, tracer_provider=provider)
    else:
        app = FastAPI(lifespan=lifespan)

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


# ---- The run ---------------------------------------------------------------------------------------------------


def _start(role: str, port: int, backend_url: str) -> subprocess.Popen[bytes]:
    # Errors of an overloaded proxy (httpx's own transport times out under the open-loop rate) would bury the report.
    command = [*pinned(0), sys.executable, __file__, "serve", role, str(port), backend_url]
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
    generator = Generator(pinned(1))
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
        pin = pinned(1)
        return lambda url, seconds: wrk(url, seconds=seconds, connections=connections, pin=pin)
    print("wrk not found (apt-get install -y wrk): the closed loop uses the Python generator, which may cap 'direct'")
    return lambda url, seconds: generator.run(url, seconds=seconds, connections=connections)


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
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
