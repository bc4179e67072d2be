"""Benchmark (`make bench-instructions`): instructions per request of blog's hot reads, in process, by callgrind.

Seconds on a shared machine move by a third between runs; instructions counted by `valgrind --tool=callgrind` for
the same code and inputs agree within about 0.5 %. So a change to the request path (routing, dependencies,
layers) can be judged on one run of each side, before `make bench` measures what it is worth over sockets.

The blog app runs in this process on a temporary database (its lifespan, its real PostgreSQL pool) holding 20
published posts, called with raw ASGI messages as uvicorn would call it, with an internal token from the gateway: no
sockets, no server, so the count is the app's own work plus asyncpg's. Two reads: a post by slug, and a page of 20
(as `make bench` calls them). The parent starts itself again under valgrind with instrumentation
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

WARMUP = 50
POSTS = 20
READS = ("post by slug", "page of 20")  # the names `make bench` gives them


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
            for _ in range(WARMUP):
                await call(app, "GET", path, headers)
            print("ready", flush=True)
            sys.stdin.readline()
            for _ in range(requests):
                status, _ = await call(app, "GET", path, headers)
            print("done", flush=True)
            sys.stdin.readline()
            if status != 200:
                raise SystemExit(f"the read answered {status}")


def count(read: str, requests: int) -> int:
    """Run the child under callgrind, counting only the measured requests; instructions per request."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        child = subprocess.Popen(
            [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"),
                *(sys.executable, __file__, "--child", read, "--requests", str(requests)),
            ],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="measured requests per run")
    parser.add_argument("--runs", type=int, default=2, help="runs, each in a new process")
    parser.add_argument("--only", nargs="+", choices=READS, default=READS, help="the reads to count")
    parser.add_argument("--child", choices=READS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(measured(args.child, args.requests))
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same dict layouts in every run
    for read in args.only:
        figures = [count(read, args.requests) for _ in range(args.runs)]
        counted = ", ".join(f"{figure:,}" for figure in figures)
        print(f"blog: {read}, in process (callgrind), instructions per request: {counted}")


if __name__ == "__main__":
    main()
