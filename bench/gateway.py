"""Benchmark (make bench): an authenticated article read through the gateway against the blog service's own read.

The stack is the five apps as local processes, started as `make run` and the end-to-end tests start them
(`python -m <service> serve --migrate`, by comm.testing.local_platform), on temporary databases and a unique
exchange and queue prefix, all removed at the end (also on Ctrl-C). The only difference: this script sets the apps'
logging to warning and turns uvicorn's access log off, so logging does not dominate what is measured.

Seeded through the public API: an author, a reader and two more users; an article by the author; the reader follows
the author; the reader and the two others favorite it; the reader comments on it. Then, for the same reader:

- gateway: `GET /api/articles/{slug}` with `Authorization: Token <reader's token>` (token validation, cached by the
  gateway for a few seconds; the blog read; the author's profile from the user service; the RealWorld answer);
- direct:  `GET /posts/by-slug/{slug}` on the blog port with `X-Internal-Token` minted for audience "blog" with the
  reader's identity, as the gateway mints it (the same post, the same `favorited`).

Setup, on two cores: the five apps pinned to core 0 (so a read through the gateway pays for the gateway, blog and
user on the same core the direct read has to itself), the load generators on core 1; PostgreSQL is not ours to pin.
One run measures both paths, interleaved in short rounds (direct, gateway, gateway, direct, ...), in two modes:

- closed loop: `wrk`, 32 connections, as fast as the server answers: throughput, latency, and the ratio of gateway
  to direct throughput; with the CPU time each app spent per request (from /proc), a figure that other work on the
  machine disturbs far less than throughput does: it says where a read through the gateway spends its time;
- open loop: a fixed rate, half the gateway's closed-loop throughput, for both paths, from a small aiohttp generator in
  its own process; latency counts from each request's scheduled send time (no coordinated omission).

Goals (issue 6): the gateway reaches at least 0.25 of the direct read's throughput, and adds at most 1 ms at p50 at
half load. The load average is printed before and after: other work on the machine skews every figure.

    uv run python bench/gateway.py                                # about two minutes, half of it starting up
    uv run --with py-spy python bench/gateway.py --profile /tmp/p # then profile gateway, blog, user under load

`--profile DIR` records each app with py-spy while wrk drives the gateway path, writes collapsed stacks
(`DIR/<app>.txt`, for flamegraph.pl or speedscope) and prints the functions that take the most CPU. py-spy samples
wall time of threads that are not idle: on a busy machine absolute counts mean little, proportions still hold.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import re
import runpy
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from loadgen import Generator, Result, pinned, wrk

from comm.http.clients import AuthServiceClient
from comm.settings import CommSettings
from comm.testing import SERVICES, WITH_DATABASE, LocalApps, local_platform
from comm.tokens import HEADER, Identity, InternalTokens

APPS_CORE, LOAD_CORE = 0, 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- The apps (child processes) ----------------------------------------------------------------------------------


def serve_app(service: str) -> None:
    """`python -m <service> serve [--migrate]`, with logging at warning and no access log."""
    import uvicorn

    bench = Path(__file__).resolve().parent  # holds a gateway.py, which would shadow the gateway package
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != bench]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run = uvicorn.run

    def quiet_run(*args: Any, **kwargs: Any) -> None:
        run(*args, **{**kwargs, "log_level": "warning", "access_log": False})

    uvicorn.run = quiet_run  # comm.cli serves at info, with an access line per request
    sys.argv = [f"python -m {service}", "serve", *(["--migrate"] if service in WITH_DATABASE else [])]
    runpy.run_module(service, run_name="__main__", alter_sys=True)


@dataclass(kw_only=True)
class Apps(LocalApps):
    """The five apps, as the end-to-end tests run them, but pinned to the apps' core and quieter (`serve_app`)."""

    ready_within: float = 120.0  # five apps migrating at once on one core

    def command(self, service: str) -> list[str]:
        """This script, as `serve_app`, on the apps' core."""
        return [*pinned(APPS_CORE), sys.executable, __file__, "app", service]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each app has used so far: what a request costs, whatever else the machine runs."""
        spent = {}
        for service, process in self.processes.items():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
                spent[service] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        return spent


@contextlib.asynccontextmanager
async def running_stack() -> AsyncIterator[Apps]:
    """Temporary databases, a unique exchange and queue prefix, the five apps; all gone on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as logs:
        # The seed registers and comments from 127.0.0.1; runs back to back stay under the limits.
        limits = {"GATEWAY_RATE_LIMIT_REGISTER": "10000/minute", "GATEWAY_RATE_LIMIT_COMMENT": "10000/minute"}
        async with local_platform(Apps, name="bench", logs=Path(logs), extra_env=limits) as apps:
            yield apps


# ---- Seed data ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    slug: str
    reader_token: str
    reader: Identity


async def seed(apps: Apps) -> Seeded:
    """Users, an article, a follow, favorites, a comment; the reader's identity as auth reports it to the gateway."""
    async with httpx.AsyncClient(base_url=f"{apps.url('gateway')}/api", timeout=30) as api:

        async def call(method: str, path: str, token: str | None = None, body: object = None) -> dict[str, Any]:
            headers = {"Authorization": f"Token {token}"} if token else {}
            response = await api.request(method, path, json=body, headers=headers)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
            answer: dict[str, Any] = response.json()
            return answer

        async def signup(role: str) -> dict[str, Any]:
            name = f"{role}{uuid.uuid4().hex[:8]}"
            body = {"user": {"username": name, "email": f"{name}@example.com", "password": "password123"}}
            user: dict[str, Any] = (await call("POST", "/users", body=body))["user"]
            return user

        author, reader, *fans = await asyncio.gather(*(signup(role) for role in ("author", "reader", "fan", "fan")))
        article = {
            "title": f"On dragons {uuid.uuid4().hex[:6]}",
            "description": "Where they live and what they eat",
            "body": "Dragons are large, winged, fire-breathing reptiles. " * 40,
            "tagList": ["dragons", "zoology", "myths"],
        }
        slug: str = (await call("POST", "/articles", author["token"], {"article": article}))["article"]["slug"]
        await call("POST", f"/profiles/{author['username']}/follow", reader["token"])
        for user in (reader, *fans):
            await call("POST", f"/articles/{slug}/favorite", user["token"])
        await call("POST", f"/articles/{slug}/comments", reader["token"], {"comment": {"body": "Fascinating."}})
        seen = (await call("GET", f"/articles/{slug}", reader["token"]))["article"]
        if not (seen["favorited"] and seen["favoritesCount"] == 3 and seen["author"]["following"]):
            raise RuntimeError(f"the seed did not take: {seen}")

    settings = CommSettings(
        service_name="gateway",
        auth_service_url=apps.url("auth"),
        internal_token_secret=apps.env["INTERNAL_TOKEN_SECRET"],
    )
    async with AuthServiceClient(settings=settings) as auth:
        validated = await auth.validate_token(reader["token"])
    return Seeded(slug=slug, reader_token=reader["token"], reader=Identity(validated.id, frozenset(validated.roles)))


# ---- Load generation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A URL and the headers of one round (an internal token is minted afresh for each: it lives a minute)."""

    url: str
    headers: Callable[[], dict[str, str]]


async def _wrk(target: Target, *, seconds: float, connections: int) -> Result:
    """wrk on the load core; its default 2 s timeout would count a saturated path's slowest answers as socket errors."""
    pin = pinned(LOAD_CORE)
    run = partial(wrk, target.url, target.headers(), seconds=seconds, connections=connections, pin=pin, timeout=10)
    return await asyncio.to_thread(run)


# ---- Measuring -----------------------------------------------------------------------------------------------------

Measure = Callable[[Target], Awaitable[Result]]


async def rounds(targets: dict[str, Target], measure: Measure, count: int) -> dict[str, list[Result]]:
    """`count` rounds of every target, interleaved, the order reversed every other round (A B, B A, ...)."""
    runs: dict[str, list[Result]] = {name: [] for name in targets}
    for i in range(count):
        for name in list(targets)[:: -1 if i % 2 else 1]:
            runs[name].append(await measure(targets[name]))
    return runs


def median(results: list[Result], key: Callable[[Result], float]) -> Result:
    return sorted(results, key=key)[len(results) // 2]


def report(title: str, runs: dict[str, list[Result]], key: Callable[[Result], float]) -> dict[str, Result]:
    """One line per target: its median round (by `key`), the errors of every round, the spread of its rounds."""
    print(f"\n{title}")
    print(f"  {'target':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   rounds: req/s, p50 ms (min-max)")
    chosen = {}
    for name, results in runs.items():
        r = chosen[name] = median(results, key)
        rps, p50 = [x.rps for x in results], [x.p50_ms for x in results]
        spread = f"{min(rps):.0f}-{max(rps):.0f}, {min(p50):.2f}-{max(p50):.2f}"
        errors = sum(x.errors for x in results)
        print(f"  {name:<9}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{errors:>8}   {spread}")
    return chosen


def report_cpu(runs: dict[str, list[Result]]) -> None:
    """The CPU each app spent per request (median of the rounds): independent of what else the machine runs."""
    print("  CPU per request, ms (median of rounds; PostgreSQL not counted):")
    for name, results in runs.items():
        apps = {app for r in results for app, ms in r.cpu_ms.items() if ms >= 0.05}
        costs = {app: statistics.median(r.cpu_ms.get(app, 0.0) for r in results) for app in apps}
        parts = ", ".join(f"{app} {ms:.2f}" for app, ms in sorted(costs.items(), key=lambda item: -item[1]))
        print(f"    {name:<9}{sum(costs.values()):>6.2f} = {parts}")


def _load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) + f" (1, 5, 15 min; {os.cpu_count()} CPUs)"


async def measure(apps: Apps, seeded: Seeded, args: argparse.Namespace) -> None:
    tokens = InternalTokens(
        secret=apps.env["INTERNAL_TOKEN_SECRET"],
        service="gateway",
        ttl_seconds=CommSettings().internal_token_ttl_seconds,
    )
    targets = {
        "direct": Target(
            f"{apps.url('blog')}/posts/by-slug/{seeded.slug}",
            lambda: {HEADER: tokens.mint(audience="blog", identity=seeded.reader)},
        ),
        "gateway": Target(
            f"{apps.url('gateway')}/api/articles/{seeded.slug}",
            lambda: {"Authorization": f"Token {seeded.reader_token}"},
        ),
    }
    generator = Generator(pinned(LOAD_CORE))
    try:
        if shutil.which("wrk"):
            tool = "wrk"

            async def load(target: Target, seconds: float) -> Result:
                return await _wrk(target, seconds=seconds, connections=args.connections)
        else:
            tool = "the Python generator (wrk not found: apt-get install -y wrk), which may cap 'direct'"

            async def load(target: Target, seconds: float) -> Result:
                return await asyncio.to_thread(
                    generator.run, target.url, target.headers(), seconds=seconds, connections=args.connections
                )

        async def closed(target: Target, seconds: float) -> Result:
            before = apps.cpu_seconds()
            result = await load(target, seconds)
            after, requests = apps.cpu_seconds(), max(1.0, result.rps * seconds)
            spent = {app: 1000 * (after[app] - before[app]) / requests for app in before if app in after}
            return replace(result, cpu_ms=spent)

        placement = "apps on core 0, load on core 1" if pinned(0) else "not pinned (no taskset or one core)"
        print(f"closed loop: {tool}; {placement}")
        print(f"load average before: {_load_average()}")
        await rounds(targets, lambda target: closed(target, 1.0), 1)  # warm every path up
        runs = await rounds(targets, lambda target: closed(target, args.seconds), args.rounds)
        title = f"closed loop, {args.connections} connections, median of {args.rounds} rounds x {args.seconds:g} s"
        closed_loop = report(title, runs, key=lambda r: r.rps)
        report_cpu(runs)

        rate = args.rate or max(10.0, round(closed_loop["gateway"].rps / 2, -1))

        async def opened(target: Target) -> Result:
            return await asyncio.to_thread(
                generator.run, target.url, target.headers(), seconds=args.open_seconds, rate=rate
            )

        runs = await rounds(targets, opened, args.rounds)
        title = f"open loop at {rate:g} req/s, median of {args.rounds} rounds x {args.open_seconds:g} s (by p50)"
        open_loop = report(title, runs, key=lambda r: r.p50_ms)
        print(f"\nload average after: {_load_average()}")

        ratio = closed_loop["gateway"].rps / closed_loop["direct"].rps
        added = open_loop["gateway"].p50_ms - open_loop["direct"].p50_ms
        added_p99 = open_loop["gateway"].p99_ms - open_loop["direct"].p99_ms
        print(f"\ngateway / direct throughput (closed loop):   {ratio:.2f}   goal >= 0.25: {_verdict(ratio >= 0.25)}")
        print(f"gateway - direct p50 at {rate:g} req/s:       {added:+.2f} ms   goal <= 1 ms: {_verdict(added <= 1.0)}")
        print(f"gateway - direct p99 at {rate:g} req/s:       {added_p99:+.2f} ms")
        if args.profile:
            await profile(apps, targets["gateway"], Path(args.profile), seconds=args.profile_seconds, args=args)
    finally:
        await asyncio.to_thread(generator.close)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# ---- Profiling (--profile) ---------------------------------------------------------------------------------------


async def profile(apps: Apps, target: Target, out: Path, *, seconds: float, args: argparse.Namespace) -> None:
    """py-spy on gateway, blog and user while wrk drives the gateway path; the top CPU consumers of each."""
    if not shutil.which("py-spy"):
        print("\n--profile: py-spy not found (uv run --with py-spy python bench/gateway.py --profile DIR)")
        return
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    profiled = ("gateway", "blog", "user")
    spies = [
        await asyncio.create_subprocess_exec(
            *pinned(LOAD_CORE),
            "py-spy",
            "record",
            "--pid",
            str(apps.processes[app].pid),
            "--duration",
            f"{seconds:g}",
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out / f"{app}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for app in profiled
    ]
    load = await _wrk(target, seconds=seconds + 1, connections=args.connections)
    for spy in spies:
        await spy.wait()
    print(f"\nprofile: gateway path under wrk ({load.rps:.0f} req/s while sampled), collapsed stacks in {out}/")
    for app in profiled:
        print_top(app, out / f"{app}.txt")


WORKSPACE_FRAME = re.compile(rf"\((?:{'|'.join(SERVICES)}|comm)/")  # py-spy names files by their package path


def print_top(app: str, path: Path, top: int = 12) -> None:
    """The event loop's thread: the workspace's functions with the most samples on the stack, any function's at its
    top. Worker threads (anyio's pool, exporters) are left out: py-spy often counts them busy while they wait."""
    if not path.exists():
        print(f"  {app}: no samples (py-spy needs ptrace: run as root or set kernel.yama.ptrace_scope=0)")
        return
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";") if frame]
        if not frames or frames[0].startswith(("Thread._bootstrap ", "_bootstrap ")):
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            if WORKSPACE_FRAME.search(frame):
                inclusive[frame] += samples
    print(f"\n  {app}: {total} samples of the event loop's thread")
    for title, counter in (("inclusive, workspace code", inclusive), ("self, any code", own)):
        print(f"    top {title}:")
        for frame, samples in [(f, n) for f, n in counter.most_common(top + 2) if n < total][:top]:  # not main()
            print(f"      {100 * samples / max(1, total):5.1f}%  {_short(frame)}")


def _short(frame: str) -> str:
    return re.sub(r"\(/.*?/(site-packages|src)/", "(", frame)


# ---- The run -------------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # clean up as on Ctrl-C
    started = time.monotonic()
    async with running_stack() as apps:
        print(f"stack up in {time.monotonic() - started:.0f} s")
        seeded = await seed(apps)
        await measure(apps, seeded, args)
    print(f"\ndone in {time.monotonic() - started:.0f} s; databases, exchange and queues removed")


def main() -> None:
    if sys.argv[1:2] == ["app"]:
        serve_app(sys.argv[2])
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--seconds", type=float, default=2, help="length of one closed-loop round")
        parser.add_argument("--open-seconds", type=float, default=3, help="length of one open-loop round")
        parser.add_argument("--rounds", type=int, default=5, help="rounds per target and mode")
        parser.add_argument("--connections", type=int, default=32)
        parser.add_argument("--rate", type=float, help="open-loop rate (default: half the gateway's throughput)")
        parser.add_argument("--profile", metavar="DIR", help="then profile the apps with py-spy, stacks into DIR")
        parser.add_argument("--profile-seconds", type=float, default=10)
        try:
            asyncio.run(run(parser.parse_args()))
        except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: cleaned up on the way out
            sys.exit("interrupted; apps stopped, databases, exchange and queues removed")


if __name__ == "__main__":
    main()
