"""Benchmark (`make bench-instructions`): instructions per request of hot reads, in process, by callgrind.

Seconds on a shared machine move by a third between runs; instructions counted by `valgrind --tool=callgrind` for
the same code and inputs agree within about 0.5 %. So a change to the request path (routing, dependencies,
layers) can be judged on one run of each side, before `make bench` measures what it is worth over sockets.

The blog app runs in this process on a temporary database (its lifespan, its real PostgreSQL pool) holding 20
published posts, called with raw ASGI messages as uvicorn would call it, with an internal token from the gateway: no
sockets, no server, so the count is the app's own work plus asyncpg's. Two reads: a post by slug, and a page of 20
(as `make bench` calls them). Then the gateway's signed-in article read: the five apps run as `make bench` runs
them (bench/stack.py, seeded as bench/cost.py seeds them), and a gateway app in this process, on the same settings,
is called as above; its calls to blog go over real sockets, so the count is the gateway's own work, its HTTP client
included, without uvicorn's. The parent starts itself again under valgrind with instrumentation
off, switches it on (`callgrind_control`) for the measured requests only, and reads the total from the dump.

    uv run python bench/instructions.py            # about a minute; needs valgrind (Debian's package)
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import uvloop

WARMUP = 50
POSTS = 20
BLOG_READS = ("post by slug", "page of 20")  # the names `make bench` gives them
GATEWAY_READ = "gateway: article, signed in"
READS = (*BLOG_READS, GATEWAY_READ)
CONCURRENT = 10  # the gateway's reads, as many at once as this: its client's connections and tasks as under load


async def call(app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """One request, as uvicorn hands it to an ASGI app; the status and the body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "server": ("127.0.0.1", 3002),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }
    sent = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect: the app answers first
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


async def measured(read: str, requests: int) -> None:
    """The child, under valgrind: the posts, then the reads, with a line to the parent around the measured ones."""
    from blog.main import create_app
    from blog.settings import BlogSettings
    from comm.db import migrate
    from comm.testing import internal_token_keys, temporary_database, tokens_of, unique_name
    from comm.tokens import HEADER, Identity

    keys = internal_token_keys(("gateway", "blog"))
    token = tokens_of(keys, "gateway").mint(audience="blog", identity=Identity(user_id=uuid.uuid4()))
    headers = {HEADER: token, "content-type": "application/json", "host": "blog"}
    async with temporary_database("bench_instructions") as url:
        await migrate(package="blog", url=url)
        settings = BlogSettings(
            database_url=url,
            internal_token_public_keys=keys["INTERNAL_TOKEN_PUBLIC_KEYS"],
            events_exchange=unique_name("bench.instructions"),
            queue_prefix=unique_name("bench.instructions"),
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            for number in range(POSTS):
                post = {"title": f"Counted {number}", "description": "d", "body": "b", "tagList": ["a", "b"]}
                status, created = await call(app, "POST", "/posts", headers, json.dumps(post).encode())
                if status != 201:
                    raise SystemExit(f"creating a post: {status} {created[:200]!r}")
            path = f"/posts/by-slug/{json.loads(created)['slug']}" if read == READS[0] else f"/posts?limit={POSTS}"
            await _counted(app, path, headers, requests)


async def measured_gateway(path: str, token: str, requests: int) -> None:
    """The child, for the gateway: its app on the stack's settings (the environment the parent hands down)."""
    from gateway.main import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        await _counted(app, path, {"authorization": f"Token {token}", "host": "gateway"}, requests, CONCURRENT)


async def _counted(app: Any, path: str, headers: dict[str, str], requests: int, concurrent: int = 1) -> None:
    """Warm up, then the measured reads between a line to the parent and its answer, `concurrent` at a time."""
    for _ in range(WARMUP):
        status, body = await call(app, "GET", path, headers)
        if status != 200:
            raise SystemExit(f"the read answered {status}: {body[:200]!r}")
    print("ready", flush=True)
    sys.stdin.readline()

    async def reads(count: int) -> None:
        for _ in range(count):
            await call(app, "GET", path, headers)

    await asyncio.gather(*(reads(requests // concurrent) for _ in range(concurrent)))
    print("done", flush=True)
    sys.stdin.readline()


def count(child_args: list[str], requests: int, env: dict[str, str] | None = None) -> int:
    """Run the child under callgrind, counting only the measured requests; instructions per request."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        child = subprocess.Popen(
            [
                *("valgrind", "-q", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"),
                *(sys.executable, __file__, "--requests", str(requests), *child_args),
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        control = ["callgrind_control"]
        for expected, command in (("ready", ["-i", "on"]), ("done", ["-i", "off"])):
            if child.stdout.readline().strip() != expected:
                raise SystemExit(f"the measured process stopped before '{expected}' (exit {child.wait()})")
            subprocess.run([*control, *command, str(child.pid)], check=True, capture_output=True)
            if expected == "done":
                subprocess.run([*control, "-d", str(child.pid)], check=True, capture_output=True)
            child.stdin.write("\n")
            child.stdin.flush()
        if child.wait() != 0:
            raise SystemExit(f"the measured process failed (exit {child.returncode})")
        totals = [_total(dump) for dump in Path(directory).glob("callgrind.out.*")]
    return max(totals) // requests  # the dump taken after the measured requests; the one at exit counts nothing


def _total(dump: Path) -> int:
    """The dump's `totals:` line, the instructions counted while instrumentation was on."""
    totals = [line for line in dump.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[-1].split()[1]) if totals else 0


async def count_gateway(requests: int, runs: int) -> list[int]:
    """The stack up and seeded, then the gateway's counted runs against it; all removed afterwards."""
    sys.path.insert(0, str(Path(__file__).parent))
    from cost import seed
    from stack import running_stack

    from comm.testing import free_port

    async with running_stack() as apps:
        seeded = await seed(apps)
        env = {**apps.env, "GATEWAY_LISTEN_PORT": str(free_port()), "GATEWAY_METRICS_PORT": str(free_port())}
        child = ["--gateway-child", f"/api/articles/{seeded.slug}", seeded.reader_token]
        return [await asyncio.to_thread(count, child, requests, env) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--requests", type=int, default=300, help=f"measured requests per run (a multiple of {CONCURRENT})"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs, each in a new process")
    parser.add_argument("--only", nargs="+", choices=READS, default=READS, help="the reads to count")
    parser.add_argument("--child", choices=BLOG_READS, help=argparse.SUPPRESS)
    parser.add_argument("--gateway-child", nargs=2, metavar=("PATH", "TOKEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(measured(args.child, args.requests))
        return
    if args.gateway_child is not None:
        uvloop.run(measured_gateway(*args.gateway_child, args.requests))  # the loop uvicorn gives the gateway
        return
    if args.requests % CONCURRENT:
        parser.error(f"--requests must be a multiple of {CONCURRENT}")
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same dict layouts in every run
    for read in args.only:
        if read == GATEWAY_READ:
            figures = asyncio.run(count_gateway(args.requests, args.runs))
            name = read
        else:
            figures = [count(["--child", read], args.requests) for _ in range(args.runs)]
            name = f"blog: {read}"
        counted = ", ".join(f"{figure:,}" for figure in figures)
        print(f"{name}, in process (callgrind), instructions per request: {counted}")


if __name__ == "__main__":
    main()
