"""`make soak`: the platform under a mixed workload while a schedule injects real faults; then a checker.

    make soak                          # every fault, 10 minutes of workload (convergence waits on top)
    make soak ARGS="--quick"           # the scenarios behind the defects fixed for it, about 3 minutes (in make test)
    make soak ARGS="--duration 300"    # every fault, squeezed into 5 minutes

What runs (all local processes, on this machine's PostgreSQL and RabbitMQ):
- Two replicas of auth, blog, user and comment, each on its own port, so relays and consumers compete; one round-robin
  TCP proxy per service stands where the service's URL points (the gateway and the services reach each other through
  it, as through a Kubernetes Service), and one gateway. Replicas start from `tests/soak_app.py`, which adds the
  failpoints (crash at an exact moment of the event path) and nothing else. A replica that dies is restarted after
  a second, as an orchestrator would.
- Every app reaches PostgreSQL through one TCP proxy and RabbitMQ through another (both owned by the soak), on fresh
  databases and a vhost of the soak's own, with the broker definitions' policies (infra/rabbitmq/definitions.json).
- Auth's second replica runs with its clock a second behind the first (libfaketime, `apt-get install faketime`; the
  soak says so and skips that fault when it is missing).
- A workload: each worker owns a few users and does, one at a time, what a user does: renames, posts, edits, deletes
  of posts that have comments, comments (signed in and anonymous), follows, favorites; a moderator approves or
  rejects anonymous comments. Every request is recorded with its outcome: accepted (2xx), refused (503/504, the
  platform saying it cannot now), rejected (another 4xx, e.g. a post deleted meanwhile) or unknown (no answer).

The schedule: each fault in turn for a while under the workload, undone in a `finally` whatever happens; then the
workload pauses and the soak waits until the platform has converged (every invariant holds, every outbox sent,
every queue empty), which gives the fault's time to converge.

The checker, in the manner of Jepsen's: the final state is read from the services' own databases and compared with
the history. A write accepted but absent is lost; one request whose effect is there twice (a comment or a post with
the same marker twice, a count above the truth) is applied twice; a write with an unknown outcome may be either.
Invariants: a profile for every user with its latest name (in user and in blog's and comment's author copies); no
comment of a deleted post; `commentCount` (user's, and the copies') = the approved comments in comment's database;
`favorites_count` = the favorites; nothing in a `.dlq` queue, nothing unroutable. A table per fault; exit status 1
when anything was lost, applied twice, or an invariant did not converge.

Faults touching the shared broker itself (stop_app/start_app and a memory alarm) run only in the full soak; they are
undone in a `finally` and checked undone before the soak goes on.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from yarl import URL

from comm.events.testing import TcpProxy
from comm.settings import CommSettings
from comm.testing import (
    SERVICES,
    WITH_DATABASE,
    LocalApps,
    admin_database_url,
    free_port,
    platform_environment,
    temporary_database,
    unique_name,
)

ROOT = Path(__file__).resolve().parent.parent
REPLICATED = ("auth", "user", "blog", "comment")
REPLICAS = 2
FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
HAVE_FAKETIME = FAKETIME_LIBRARY.exists()
DEFINITIONS = json.loads((ROOT / "infra" / "rabbitmq" / "definitions.json").read_text())
UNROUTABLE = "blog.events.unroutable"
# The routing keys some service consumes: the broker definitions' bindings of the events exchange.
CONSUMED = frozenset(b["routing_key"] for b in DEFINITIONS["bindings"] if b["source"] == "blog.events")
CONVERGE_WITHIN = 120.0  # seconds; a fault whose effects are not repaired by then counts its violations
PASSWORD = "soak-password"

# ---- the platform: two replicas per service behind round-robin proxies -------------------------------------------


class RoundRobinProxy(TcpProxy):
    """Spreads new connections over the replicas, skipping one that refuses (dead): a Service in front of pods."""

    def __init__(self, *, target_url: str, ports: list[int]) -> None:
        super().__init__(target_url=target_url)
        self._ports = itertools.cycle(ports)
        self._count = len(ports)

    async def connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        for attempt in range(self._count):
            try:
                return await asyncio.open_connection("127.0.0.1", next(self._ports))
            except OSError:
                if attempt == self._count - 1:
                    raise
        raise AssertionError("unreachable")


def replica_names(service: str) -> list[str]:
    return [f"{service}-{n}" for n in range(1, REPLICAS + 1)] if service in REPLICATED else [service]


@dataclass(kw_only=True)
class SoakApps(LocalApps):
    """Replicas are the apps here (`user-1`, `user-2`, `gateway`); `failpoints` is where faults are armed."""

    failpoints: Path
    skewed: dict[str, str] = field(default_factory=dict)  # replica -> FAKETIME offset
    restarts: Counter[str] = field(default_factory=Counter)
    supervising: bool = True

    def command(self, service: str) -> list[str]:
        package = service.partition("-")[0]
        migrate = ["--migrate"] if package in WITH_DATABASE else []
        return [sys.executable, str(ROOT / "tests" / "soak_app.py"), package, "serve", *migrate]

    def environment(self, service: str) -> dict[str, str]:
        package = service.partition("-")[0]
        env = {
            **self.env,
            f"{package.upper()}_LISTEN_PORT": str(self.ports[service]),
            "SOAK_FAILPOINTS": str(self.failpoints),
            "SOAK_REPLICA": service,
        }
        if offset := self.skewed.get(service):
            env |= {
                "LD_PRELOAD": str(FAKETIME_LIBRARY),
                "FAKETIME": offset,
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # asyncio's timers stay sane; only the wall clock is off
                "FAKETIME_DONT_RESET": "1",
            }
        return env

    def arm(self, replica: str, point: str) -> None:
        (self.failpoints / f"{replica}.{point}").touch()

    def armed(self, replica: str, point: str) -> bool:
        return (self.failpoints / f"{replica}.{point}").exists()

    def signal(self, replica: str, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, KeyError):
            os.kill(self.processes[replica].pid, sig)

    async def supervise(self) -> None:
        """Restart a replica that died (a failpoint, a crash), a second after, as Kubernetes would."""
        while True:
            await asyncio.sleep(0.5)
            if not self.supervising:
                continue
            for name, process in list(self.processes.items()):
                if process.returncode is not None:
                    self.restarts[name] += 1
                    await asyncio.sleep(1)
                    with contextlib.suppress(RuntimeError):
                        await self.start(name)


@dataclass
class Platform:
    apps: SoakApps
    databases: dict[str, str]  # service -> its database's name
    vhost: str
    broker: TcpProxy
    postgres: TcpProxy
    services: dict[str, RoundRobinProxy]

    @property
    def gateway(self) -> str:
        return self.apps.gateway

    def replicas(self, service: str) -> list[str]:
        return replica_names(service)


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@contextlib.contextmanager
def own_vhost(name: str) -> Any:
    """A vhost for the soak with the definitions' policies; guest may do anything in it; deleted afterwards."""
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        for policy in DEFINITIONS.get("policies", []):
            # `quorum_queues` is RabbitMQ 3.12's; an older broker (this machine's may be) knows only `queues`.
            for apply_to in dict.fromkeys((policy["apply-to"], "queues" if "queues" in policy["apply-to"] else "all")):
                try:
                    rabbitmqctl(
                        "set_policy",
                        "-p",
                        name,
                        "--apply-to",
                        apply_to,
                        "--priority",
                        str(policy["priority"]),
                        policy["name"],
                        policy["pattern"],
                        json.dumps(policy["definition"]),
                    )
                    break
                except RuntimeError:
                    if apply_to != policy["apply-to"]:
                        raise
        yield
    finally:
        rabbitmqctl("delete_vhost", name)


def _soak_settings() -> dict[str, str]:
    """Beyond the platform's defaults: limits out of the workload's way (it is one address with many users), quick
    retries; everything else as shipped."""
    return {
        "GATEWAY_RATE_LIMIT_REGISTER": "100000/minute",
        "GATEWAY_RATE_LIMIT_UPDATE_USER": "100000/minute",
        "GATEWAY_RATE_LIMIT_COMMENT": "100000/minute",
        "GATEWAY_RATE_LIMIT_COMMENT_ANONYMOUS": "100000/minute",
        "GATEWAY_RATE_LIMIT_LOGIN": "100000/minute",
        "GATEWAY_RATE_LIMIT_LOGIN_ADDRESS": "100000/minute",
        "GATEWAY_RATE_LIMIT_LOGIN_ACCOUNT": "100000/minute",
        "OTEL_TRACES_SAMPLER": "always_off",  # no collector here; spans would only queue
        "PYTHONUNBUFFERED": "1",
        **{f"{service.upper()}_EVENTS_RETRY_DELAY_SECONDS": "0.5" for service in REPLICATED},
        # Eight replicas on one PostgreSQL whose max_connections is 100 (this machine's, shared with other runs):
        # POOL_SIZE + READ_POOL_SIZE each instead of 10 + 10 (check_connection_headroom says what that needs).
        **{f"{service.upper()}_DATABASE_POOL_SIZE": str(POOL_SIZE) for service in REPLICATED},
        **{f"{service.upper()}_DATABASE_READ_POOL_SIZE": str(READ_POOL_SIZE) for service in REPLICATED},
    }


POOL_SIZE, READ_POOL_SIZE = 4, 2
# What the soak may hold at once: each replica's pools and its relay's listener, and the soak's own (its checker
# reads a database at a time, the fault's admin connection, a migration at a restart).
CONNECTIONS_NEEDED = len(REPLICATED) * REPLICAS * (POOL_SIZE + READ_POOL_SIZE + 1) + 6


async def check_connection_headroom() -> None:
    """Refuse to start, saying why, when PostgreSQL has fewer free connections than the soak may hold: short of
    them, replicas and the checker meet `too many clients` and every fault after looks unrepaired."""
    conn = await asyncpg.connect(admin_database_url())
    try:
        limit = int(await conn.fetchval("SHOW max_connections"))
        reserved = int(await conn.fetchval("SHOW superuser_reserved_connections"))
        used = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
    finally:
        await conn.close()
    free = limit - reserved - used
    if free < CONNECTIONS_NEEDED:
        raise SystemExit(
            f"soak: PostgreSQL has {free} free connections (max_connections {limit}, {reserved} reserved, {used} in"
            f" use); the soak needs {CONNECTIONS_NEEDED}: stop what holds them or raise max_connections"
        )


@contextlib.asynccontextmanager
async def platform(logs: Path, *, skew: bool) -> AsyncIterator[Platform]:
    rabbitmq = URL(CommSettings().rabbitmq_url)
    vhost = unique_name("soak")
    async with contextlib.AsyncExitStack() as resources:
        resources.enter_context(own_vhost(vhost))
        broker = TcpProxy(target_url=str(rabbitmq.with_path(f"/{vhost}")))
        await broker.open()
        resources.push_async_callback(broker.close)
        admin = URL(admin_database_url())
        postgres = TcpProxy(target_url=str(admin))
        await postgres.open()
        resources.push_async_callback(postgres.close)
        urls = {s: await resources.enter_async_context(temporary_database(f"soak_{s}")) for s in WITH_DATABASE}
        through_proxy = {s: str(URL(url).with_port(postgres.port)) for s, url in urls.items()}
        ports = {service: free_port() for service in SERVICES}
        replica_ports = {name: free_port() for service in REPLICATED for name in replica_names(service)}
        env = platform_environment(
            databases=through_proxy,
            ports=ports,
            exchange="blog.events",
            prefix="unused",
            broker_url=broker.url,
            logs=logs,
            extra={
                **_soak_settings(),
                **{f"{service.upper()}_QUEUE_PREFIX": service for service in REPLICATED},
            },
        )
        services = {}
        for service in REPLICATED:
            proxy = RoundRobinProxy(
                target_url=f"http://127.0.0.1:{ports[service]}",
                ports=[replica_ports[name] for name in replica_names(service)],
            )
            proxy.port = ports[service]
            await proxy.open()
            resources.push_async_callback(proxy.close)
            services[service] = proxy
        failpoints = Path(tempfile.mkdtemp(prefix="soak-failpoints-"))
        resources.callback(shutil.rmtree, failpoints, ignore_errors=True)
        apps = SoakApps(
            env=env,
            ports={**replica_ports, "gateway": ports["gateway"]},
            logs=logs,
            failpoints=failpoints,
            skewed={"auth-2": "-1s"} if skew else {},
        )
        resources.push_async_callback(apps.stop_all)
        # First replicas one after another (each migrates its database), then the second ones together.
        for service in REPLICATED:
            await apps.start(replica_names(service)[0])
        async with asyncio.TaskGroup() as starting:
            for service in REPLICATED:
                for name in replica_names(service)[1:]:
                    starting.create_task(apps.start(name))
        await apps.start("gateway")
        supervisor = asyncio.create_task(apps.supervise())
        try:
            yield Platform(
                apps=apps,
                databases={s: URL(url).path.lstrip("/") for s, url in urls.items()},
                vhost=vhost,
                broker=broker,
                postgres=postgres,
                services=services,
            )
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor


# ---- the history ---------------------------------------------------------------------------------------------------

ACCEPTED, REFUSED, REJECTED, UNKNOWN = "accepted", "refused", "rejected", "unknown"


@dataclass
class Op:
    kind: str
    phase: str
    outcome: str = UNKNOWN
    status: int = 0
    seconds: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class User:
    email: str
    token: str
    name: str  # the name the soak believes is current (the last accepted rename)
    id: str = ""


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    phase: str = "warm-up"

    def new(self, kind: str, **args: Any) -> Op:
        op = Op(kind=kind, phase=self.phase, args=args)
        self.ops.append(op)
        return op


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return ACCEPTED
    if status in (503, 504):
        return REFUSED
    if 400 <= status < 500:
        return REJECTED
    return UNKNOWN  # a 500 is a defect: the checker reports it through the unknown count and the log


class Client:
    """The public API as the workload calls it, recording every request in the history."""

    def __init__(self, base: str, history: History) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10.0))
        self.history = history
        self.server_errors: list[str] = []

    async def call(self, op: Op, method: str, path: str, *, token: str | None = None, body: Any = None) -> Any:
        headers = {"Authorization": f"Token {token}"} if token else {}
        started = time.monotonic()
        try:
            response = await self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError:
            op.outcome, op.seconds = UNKNOWN, time.monotonic() - started
            return None
        op.seconds = time.monotonic() - started
        op.status, op.outcome = response.status_code, outcome_of(response.status_code)
        if response.status_code >= 500 and response.status_code not in (503, 504):
            self.server_errors.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
        if op.outcome == ACCEPTED and response.content:
            return response.json()
        return None


def marker() -> str:
    return f"m{uuid.uuid4().hex[:16]}"


class Workload:
    """Workers that each own a few users and act as them, one request at a time; a moderator."""

    def __init__(self, client: Client, *, workers: int, users_per_worker: int) -> None:
        self.client = client
        self.history = client.history
        self.workers = workers
        self.users_per_worker = users_per_worker
        self.users: list[User] = []
        self.posts: dict[str, str] = {}  # live slug -> author email
        self.running = asyncio.Event()
        self.moderator: User | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def register(self, prefix: str = "s") -> User | None:
        name = f"{prefix}{uuid.uuid4().hex[:10]}"
        email = f"{name}@soak.example"
        op = self.history.new("register", email=email, name=name)
        body = {"user": {"username": name, "email": email, "password": PASSWORD}}
        answer = await self.client.call(op, "POST", "/users", body=body)
        return User(email=email, token=answer["user"]["token"], name=name) if answer else None

    async def start(self) -> None:
        for _ in range(self.workers * self.users_per_worker):
            for _ in range(20):
                if user := await self.register():
                    self.users.append(user)
                    break
                await asyncio.sleep(0.5)
        self.running.set()
        for n in range(self.workers):
            own = self.users[n * self.users_per_worker : (n + 1) * self.users_per_worker]
            self._tasks.append(asyncio.create_task(self._work(own)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self, own: list[User]) -> None:
        actions: list[tuple[Callable[[User], Awaitable[None]], int]] = [
            (self.post, 3),
            (self.comment, 8),
            (self.anonymous_comment, 2),
            (self.favorite, 4),
            (self.follow, 2),
            (self.rename, 2),
            (self.edit, 1),
            (self.delete_post, 1),
            (self.delete_comment, 1),
            (self.register_one, 1),
        ]
        choices, weights = zip(*actions, strict=True)
        while True:
            await self.running.wait()
            action = random.choices(choices, weights)[0]
            try:
                await action(random.choice(own))
            except Exception as exc:  # a bug of the workload must not end it silently
                print(f"soak: workload step {action.__name__} failed: {exc!r}", file=sys.stderr)
            await asyncio.sleep(random.uniform(0.01, 0.05))

    def _some_post(self) -> str | None:
        return random.choice(list(self.posts)) if self.posts else None

    async def register_one(self, _user: User) -> None:
        if user := await self.register():
            self.users.append(user)  # others may follow it; nobody acts as it

    async def post(self, user: User) -> None:
        title = f"{marker()} soak"
        op = self.history.new("post", author=user.email, marker=title.split()[0])
        body = {"article": {"title": title, "description": "d", "body": "b", "tagList": ["soak"]}}
        answer = await self.client.call(op, "POST", "/articles", token=user.token, body=body)
        if answer:
            slug = answer["article"]["slug"]
            op.args["slug"] = slug
            self.posts[slug] = user.email

    async def edit(self, user: User) -> None:
        mine = [slug for slug, author in self.posts.items() if author == user.email]
        if mine:
            slug = random.choice(mine)
            op = self.history.new("edit", slug=slug)
            await self.client.call(
                op, "PUT", f"/articles/{slug}", token=user.token, body={"article": {"body": marker()}}
            )

    async def delete_post(self, user: User) -> None:
        mine = [slug for slug, author in self.posts.items() if author == user.email]
        if mine:
            slug = random.choice(mine)
            op = self.history.new("delete-post", slug=slug)
            await self.client.call(op, "DELETE", f"/articles/{slug}", token=user.token)
            if op.outcome in (ACCEPTED, REJECTED):
                self.posts.pop(slug, None)

    async def comment(self, user: User) -> None:
        if slug := self._some_post():
            text = marker()
            op = self.history.new("comment", slug=slug, marker=text, author=user.email)
            answer = await self.client.call(
                op, "POST", f"/articles/{slug}/comments", token=user.token, body={"comment": {"body": text}}
            )
            if answer:
                op.args["number"] = answer["comment"]["id"]

    async def anonymous_comment(self, _user: User) -> None:
        if slug := self._some_post():
            text = marker()
            op = self.history.new("comment", slug=slug, marker=text, author=None)
            body = {"comment": {"body": text, "authorName": f"guest {uuid.uuid4().hex[:6]}"}}
            await self.client.call(op, "POST", f"/articles/{slug}/comments", body=body)

    async def delete_comment(self, user: User) -> None:
        mine = [
            op
            for op in self.history.ops[-400:]
            if op.kind == "comment"
            and op.outcome == ACCEPTED
            and op.args["author"] == user.email
            and "number" in op.args
            and not op.args.get("deleting")
        ]
        if mine:
            target = random.choice(mine)
            target.args["deleting"] = True
            op = self.history.new("delete-comment", marker=target.args["marker"])
            slug, number = target.args["slug"], target.args["number"]
            await self.client.call(op, "DELETE", f"/articles/{slug}/comments/{number}", token=user.token)

    async def favorite(self, user: User) -> None:
        if slug := self._some_post():
            method = random.choice(("POST", "POST", "DELETE"))
            op = self.history.new("favorite" if method == "POST" else "unfavorite", slug=slug, user=user.email)
            await self.client.call(op, method, f"/articles/{slug}/favorite", token=user.token)

    async def follow(self, user: User) -> None:
        target = random.choice(self.users)
        if target is not user:
            method = random.choice(("POST", "POST", "DELETE"))
            op = self.history.new("follow" if method == "POST" else "unfollow", user=user.email, target=target.email)
            await self.client.call(op, method, f"/profiles/{target.name}/follow", token=user.token)

    async def rename(self, user: User) -> None:
        name = f"r{uuid.uuid4().hex[:10]}"
        op = self.history.new("rename", email=user.email, name=name)
        answer = await self.client.call(op, "PUT", "/user", token=user.token, body={"user": {"username": name}})
        if answer:
            user.name = name

    async def moderate(self) -> None:
        """The moderator's loop: approve most pending comments, reject some."""
        assert self.moderator is not None
        while True:
            await self.running.wait()
            op = self.history.new("moderation-list")
            page = await self.client.call(op, "GET", "/moderation/comments?limit=50", token=self.moderator.token)
            for comment in (page or {}).get("comments", []):
                verdict = random.choice(("approve", "approve", "approve", "reject"))
                op = self.history.new(verdict, number=comment["id"])
                body = {"reason": "soak"} if verdict == "reject" else None
                await self.client.call(
                    op, "POST", f"/moderation/comments/{comment['id']}/{verdict}", token=self.moderator.token, body=body
                )
            await asyncio.sleep(0.5)


# ---- the final state and the invariants ----------------------------------------------------------------------------


@dataclass
class State:
    """What the services' own databases and the broker hold, read directly (not through the platform)."""

    users: dict[str, tuple[str, str]]  # email -> (user id, username): auth
    profiles: dict[str, str]  # user id -> username: user
    follows: set[tuple[str, str]]
    counts: dict[str, int]  # user id -> approved, not deleted comments: user's comment_states
    posts: dict[str, tuple[str, str, int]]  # title marker -> (post id, slug, favorites_count)
    post_markers: Counter[str]  # title marker -> rows (one request's post twice shows here)
    favorites: set[tuple[str, str]]  # (post id, user id)
    comments: Counter[str]  # body marker -> rows
    comment_posts: dict[str, str]  # comment id -> post id
    approved: Counter[str]  # author id -> approved comments: comment
    authors: dict[str, dict[str, tuple[str, int]]]  # service -> user id -> (username, comment_count)
    pending: dict[str, int]  # service -> outbox rows not sent
    queues: dict[str, int]  # queue -> messages ready

    def violations(self) -> list[str]:
        found = []
        names = dict(self.users.values())
        for user_id, username in names.items():
            if self.profiles.get(user_id) != username:
                found.append(f"profile of {user_id}: {self.profiles.get(user_id)!r}, auth says {username!r}")
        for service, copies in self.authors.items():
            for user_id, (username, count) in copies.items():
                if user_id in names and username != names[user_id]:
                    found.append(f"{service}'s copy of {user_id}: {username!r}, auth says {names[user_id]!r}")
                if count != self.approved.get(user_id, 0):
                    found.append(
                        f"{service}'s copy of {user_id}: commentCount {count}, {self.approved[user_id]} approved"
                    )
        for user_id in set(self.counts) | set(self.approved):
            if self.counts.get(user_id, 0) != self.approved.get(user_id, 0):
                found.append(
                    f"commentCount of {user_id}: {self.counts.get(user_id, 0)}, {self.approved[user_id]} approved"
                )
        live = {post_id for post_id, _, _ in self.posts.values()}
        orphans = sum(1 for post_id in self.comment_posts.values() if post_id not in live)
        if orphans:
            found.append(f"{orphans} comments of deleted posts")
        favorites = Counter(post_id for post_id, _ in self.favorites)
        for post_id, slug, count in self.posts.values():
            if count != favorites[post_id]:
                found.append(f"favoritesCount of {slug}: {count}, {favorites[post_id]} favorites")
        for queue, messages in self.queues.items():
            if messages and (queue.endswith(".dlq") or queue.endswith(".unroutable")):
                found.append(f"{messages} messages in {queue}")
        return found

    def settled(self) -> list[str]:
        """Invariant violations, and what is still on its way (outbox rows, queued messages)."""
        waiting = [f"{n} outbox rows of {s} not sent" for s, n in self.pending.items() if n]
        waiting += [
            f"{n} messages in {q}" for q, n in self.queues.items() if n and not q.endswith((".dlq", ".unroutable"))
        ]
        return self.violations() + waiting


async def _rows(database: str, query: str) -> list[asyncpg.Record]:
    base = admin_database_url().rpartition("/")[0]
    conn = await asyncpg.connect(f"{base}/{database}")
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


async def queue_depths(p: Platform) -> dict[str, int]:
    names = [
        line.split("\t")[0]
        for line in (
            await asyncio.to_thread(rabbitmqctl, "list_queues", "-p", p.vhost, "--no-table-headers", "name")
        ).splitlines()
        if line
    ]
    url = str(URL(CommSettings().rabbitmq_url).with_path(f"/{p.vhost}"))
    depths = {}
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        for name in names:
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = queue.declaration_result.message_count or 0
        if depths.get(UNROUTABLE):
            depths[UNROUTABLE] = await _unroutable_with_consumer(connection)
    return depths


async def _unroutable_with_consumer(connection: aio_pika.abc.AbstractConnection) -> int:
    """The unroutable messages some consumer subscribes to: lost to it. The events no service consumes yet
    (`post.published`, `post.updated`) land there by design (docs/events.md) and are not counted."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(UNROUTABLE, passive=True)
        missed = 0
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            missed += message.routing_key in CONSUMED
        return missed
    finally:
        await channel.close()  # every message fetched goes back to the queue


async def read_state(p: Platform, queues: dict[str, int] | None = None) -> State:
    db = p.databases
    users = {
        r["email"]: (str(r["id"]), r["username"])
        for r in await _rows(db["auth"], "SELECT id, email, username FROM users")
    }
    authors = {}
    for service in ("blog", "comment"):
        rows = await _rows(db[service], "SELECT user_id, username, comment_count FROM authors")
        authors[service] = {str(r["user_id"]): (r["username"], r["comment_count"]) for r in rows}
    comments = await _rows(db["comment"], "SELECT id, post_id, author_id, body, status FROM comments")
    posts = await _rows(db["blog"], "SELECT id, slug, title, favorites_count FROM posts")
    pending = {}
    for service in WITH_DATABASE:
        pending[service] = (await _rows(db[service], "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"))[0]["n"]
    counted = await _rows(
        db["user"],
        "SELECT author_id, count(*) AS n FROM comment_states"
        " WHERE status = 'approved' AND NOT deleted AND author_id IS NOT NULL GROUP BY author_id",
    )
    return State(
        users=users,
        profiles={
            str(r["user_id"]): r["username"] for r in await _rows(db["user"], "SELECT user_id, username FROM profiles")
        },
        follows={
            (str(r["follower_id"]), str(r["followee_id"])) for r in await _rows(db["user"], "SELECT * FROM follows")
        },
        counts={str(r["author_id"]): r["n"] for r in counted},
        posts={r["title"].split()[0]: (str(r["id"]), r["slug"], r["favorites_count"]) for r in posts},
        post_markers=Counter(r["title"].split()[0] for r in posts),
        favorites={(str(r["post_id"]), str(r["user_id"])) for r in await _rows(db["blog"], "SELECT * FROM favorites")},
        comments=Counter(r["body"] for r in comments),
        comment_posts={str(r["id"]): str(r["post_id"]) for r in comments},
        approved=Counter(str(r["author_id"]) for r in comments if r["status"] == "approved" and r["author_id"]),
        authors=authors,
        pending=pending,
        queues=queues if queues is not None else await queue_depths(p),
    )


async def converge(p: Platform, within: float) -> tuple[float | None, list[str]]:
    """Seconds until the platform settled (None: not within `within`), and what was still wrong at the end."""
    started = time.monotonic()
    remaining: list[str] = []
    while time.monotonic() - started < within:
        try:
            remaining = (await read_state(p)).settled()
        except (OSError, asyncpg.PostgresError, aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            remaining = [f"state unreadable: {exc!r}"]
        if not remaining:
            return time.monotonic() - started, []
        await asyncio.sleep(1)
    return None, remaining


# ---- the checker: the history against the final state ----------------------------------------------------------------

MAYBE = (ACCEPTED, REFUSED, UNKNOWN)  # a write with one of these outcomes may have taken effect


@dataclass
class Anomalies:
    """Per phase: writes accepted and absent (lost), present twice (twice), refused with a 4xx yet in effect
    (wrong answers); and what each one was."""

    lost: Counter[str] = field(default_factory=Counter)
    twice: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.lost.values()) + sum(self.twice.values()) + sum(self.wrong.values())


def check(history: History, state: State) -> Anomalies:
    """The history against the final state."""
    found = Anomalies()
    lost, twice, wrong, notes = found.lost, found.twice, found.wrong, found.notes
    notes: list[str] = []
    ops = history.ops

    deleted_posts = {op.args["slug"] for op in ops if op.kind == "delete-post" and op.outcome in MAYBE}

    deleted_comments = {op.args["marker"] for op in ops if op.kind == "delete-comment" and op.outcome in MAYBE}
    renames: defaultdict[str, list[Op]] = defaultdict(list)
    toggles: defaultdict[tuple[str, str, str], list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind == "register" and op.outcome == ACCEPTED and op.args["email"] not in state.users:
            lost[op.phase] += 1
            notes.append(f"lost: registration of {op.args['email']} ({op.phase})")
        elif op.kind == "rename":
            renames[op.args["email"]].append(op)
        elif op.kind == "post":
            rows = state.post_markers[op.args["marker"]]
            slug = op.args.get("slug")
            if rows > 1:
                twice[op.phase] += 1
                notes.append(f"applied twice: post {op.args['marker']} x{rows} ({op.phase})")
            elif op.outcome == REJECTED and rows:
                wrong[op.phase] += 1
                notes.append(f"answered {op.status} yet stored: post {op.args['marker']} ({op.phase})")
            elif op.outcome == ACCEPTED and rows == 0 and slug not in deleted_posts:
                lost[op.phase] += 1
                notes.append(f"lost: post {op.args['marker']} ({op.phase})")
        elif op.kind == "comment":
            rows = state.comments[op.args["marker"]]
            if rows > 1:
                twice[op.phase] += 1
                notes.append(f"applied twice: comment {op.args['marker']} x{rows} ({op.phase})")
            elif op.outcome == REJECTED and rows:
                wrong[op.phase] += 1
                notes.append(f"answered {op.status} yet stored: comment {op.args['marker']} ({op.phase})")
            elif (
                op.outcome == ACCEPTED
                and rows == 0
                and op.args["marker"] not in deleted_comments
                and op.args["slug"] not in deleted_posts
            ):
                lost[op.phase] += 1
                notes.append(f"lost: comment {op.args['marker']} on {op.args['slug']} ({op.phase})")
        elif op.kind in ("favorite", "unfavorite"):
            toggles[("favorite", op.args["user"], op.args["slug"])].append(op)
        elif op.kind in ("follow", "unfollow"):
            toggles[("follow", op.args["user"], op.args["target"])].append(op)
    registered = {op.args["email"]: op.args["name"] for op in ops if op.kind == "register"}
    for email, sequence in renames.items():
        if email not in state.users:
            continue
        last = max((i for i, op in enumerate(sequence) if op.outcome == ACCEPTED), default=None)
        allowed = {registered.get(email)} if last is None else {sequence[last].args["name"]}
        allowed |= {op.args["name"] for op in sequence[(last or -1) + 1 :] if op.outcome in (REFUSED, UNKNOWN)}
        if last is None:
            allowed |= {op.args["name"] for op in sequence if op.outcome in (REFUSED, UNKNOWN)}
        actual = state.users[email][1]
        if answered := next((op for op in sequence if op.outcome == REJECTED and op.args["name"] == actual), None):
            wrong[answered.phase] += 1
            notes.append(f"answered {answered.status} yet stored: rename of {email} to {actual!r} ({answered.phase})")
        elif actual not in allowed:
            phase = sequence[last].phase if last is not None else sequence[0].phase
            lost[phase] += 1
            notes.append(f"lost: rename of {email}: {actual!r}, expected one of {sorted(map(str, allowed))} ({phase})")
    slugs = {slug: post_id for post_id, slug, _ in state.posts.values()}
    for (kind, email, other), sequence in toggles.items():
        last = max((i for i, op in enumerate(sequence) if op.outcome == ACCEPTED), default=None)
        if last is None or any(op.outcome in (REFUSED, UNKNOWN) for op in sequence[last + 1 :]):
            continue  # nothing accepted, or a later request may or may not have taken effect
        want = sequence[last].kind in ("favorite", "follow")
        user_id = state.users.get(email, ("", ""))[0]
        if kind == "favorite":
            if other not in slugs:
                continue  # the post is gone, its favorites with it
            have = (slugs[other], user_id) in state.favorites
        else:
            have = (user_id, state.users.get(other, ("", ""))[0]) in state.follows
        if want and not have:
            lost[sequence[last].phase] += 1
            notes.append(f"lost: {kind} of {other} by {email} ({sequence[last].phase})")
        elif have and not want:
            lost[sequence[last].phase] += 1
            notes.append(f"lost: un{kind} of {other} by {email} ({sequence[last].phase})")
    return found


# ---- the faults ------------------------------------------------------------------------------------------------------

FaultRun = Callable[[Platform, Workload, float], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    name: str
    run: FaultRun
    hold: float  # seconds under the fault (or of the scenario) at scale 1 (the quick soak's), stretched by --duration
    at_least: float = 6.0  # seconds, however short a --duration squeezes it
    quick: bool = False  # also in the quick soak (`make test`)
    fixed: bool = False  # its length is the fault (past three heartbeats, past the old parking): never stretched
    shared_broker: bool = False  # touches the machine's RabbitMQ itself: full soak only


async def _rearming(p: Platform, hold: float, targets: list[tuple[str, str]]) -> None:
    """Arm each failpoint again whenever its replica has crashed there, for `hold` seconds; disarm after."""
    try:
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            for replica, point in targets:
                if not p.apps.armed(replica, point) and replica in p.apps.processes:
                    p.apps.arm(replica, point)
            await asyncio.sleep(3)
    finally:
        for replica, point in targets:
            (p.apps.failpoints / f"{replica}.{point}").unlink(missing_ok=True)


async def relay_killed(p: Platform, _w: Workload, hold: float) -> None:
    """SIGKILL of a relay after the broker's confirms, before the rows are marked sent."""
    await _rearming(p, hold, [("comment-1", "relay-before-mark"), ("auth-1", "relay-before-mark")])


async def consumer_killed_before_ack(p: Platform, _w: Workload, hold: float) -> None:
    """SIGKILL of a consumer after its transaction committed, before the ack."""
    await _rearming(p, hold, [("user-1", "consumer-before-ack"), ("comment-2", "consumer-before-ack")])


async def consumer_killed_in_handler(p: Platform, _w: Workload, hold: float) -> None:
    """SIGKILL of a consumer inside a handler, its transaction open."""
    await _rearming(p, hold, [("user-2", "consumer-in-handler"), ("blog-1", "consumer-in-handler")])


async def broker_stopped(_p: Platform, _w: Workload, hold: float) -> None:
    """`rabbitmqctl stop_app`, then `start_app`: the broker's node down and up (the shared broker)."""
    try:
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        await asyncio.sleep(hold)
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup", "--timeout", "60")


async def broker_hung(p: Platform, _w: Workload, hold: float) -> None:
    """The broker answers nothing, closes nothing (the proxy holds every byte): longer than three heartbeats."""
    p.broker.hang()
    try:
        await asyncio.sleep(hold)
    finally:
        p.broker.resume()


async def broker_cut(p: Platform, _w: Workload, hold: float) -> None:
    """Every connection to the broker closed, and refused for a moment, twice."""
    for _ in range(2):
        await p.broker.close()
        try:
            await asyncio.sleep(2)
        finally:
            await p.broker.open()
        await asyncio.sleep(max(0.0, hold / 2 - 2))


async def broker_alarmed(_p: Platform, _w: Workload, hold: float) -> None:
    """A memory alarm: the broker blocks every publisher (the shared broker), then lifts it."""
    watermark = "vm_memory_monitor:get_vm_memory_high_watermark()."
    before = (await asyncio.to_thread(rabbitmqctl, "eval", watermark)).strip()
    try:
        await asyncio.to_thread(rabbitmqctl, "set_vm_memory_high_watermark", "absolute", "1")
        await asyncio.sleep(hold)
    finally:
        if before.startswith("{absolute"):
            await asyncio.to_thread(
                rabbitmqctl, "set_vm_memory_high_watermark", "absolute", before.strip("{}").split(",")[1]
            )
        else:
            await asyncio.to_thread(rabbitmqctl, "set_vm_memory_high_watermark", before if "." in before else "0.4")
        for _ in range(60):
            if (await asyncio.to_thread(rabbitmqctl, "eval", "rabbit_alarm:get_alarms().")).strip() == "[]":
                break
            await asyncio.sleep(1)
        else:
            raise RuntimeError("the broker's memory alarm did not clear")


async def database_refusing(p: Platform, _w: Workload, hold: float) -> None:
    """The user service's database refuses connections (its backends terminated), for `hold` seconds."""
    name = p.databases["user"]
    admin = await asyncpg.connect(admin_database_url())
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await asyncio.sleep(hold)
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def postgres_restarted(p: Platform, _w: Workload, hold: float) -> None:
    """PostgreSQL gone for every app (every connection cut, new ones refused), then back: a restart."""
    await p.postgres.close()
    try:
        await asyncio.sleep(hold)
    finally:
        await p.postgres.open()


async def service_hung(p: Platform, w: Workload, hold: float) -> None:
    """Both user replicas SIGSTOPped: the gateway must answer within its deadline, then from the open breaker."""
    replicas = p.replicas("user")
    p.apps.supervising = False  # a stopped process is not a dead one
    for replica in replicas:
        p.apps.signal(replica, signal.SIGSTOP)
    try:
        probes = []
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            op = w.history.new("probe-profile")
            await w.client.call(op, "GET", f"/profiles/{random.choice(w.users).name}")
            probes.append(op)
            await asyncio.sleep(0.2)
        slowest = max((op.seconds for op in probes), default=0.0)
        later = [op.seconds for op in probes[3:]]
        print(
            f"soak: {hold:g} s with user frozen: {len(probes)} profile reads, statuses "
            f"{dict(Counter(op.status for op in probes))}, slowest {slowest:.2f} s, "
            f"after the third {max(later, default=0.0) * 1000:.0f} ms at most"
        )
    finally:
        for replica in replicas:
            p.apps.signal(replica, signal.SIGCONT)
        p.apps.supervising = True


async def clocks_apart(p: Platform, w: Workload, hold: float) -> None:
    """Renames in bursts while auth's two replicas' clocks are a second apart: the newest name must win."""
    if not p.apps.skewed:
        print("soak: libfaketime missing (apt-get install faketime): auth's replicas share one clock", file=sys.stderr)
    w.running.clear()  # a user's renames stay one at a time: the burst below is the only renamer
    try:
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            await asyncio.gather(*(_renamed_twice(w, user) for user in w.users[: w.workers * w.users_per_worker]))
    finally:
        w.running.set()


async def _renamed_twice(w: Workload, user: User) -> None:
    await w.rename(user)
    await w.rename(user)


async def deliveries_duplicated(p: Platform, _w: Workload, hold: float) -> None:
    """Every event of a while delivered again, twice for some, in shuffled order (same message ids)."""
    url = str(URL(CommSettings().rabbitmq_url).with_path(f"/{p.vhost}"))
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("blog.events")
        tap = await channel.declare_queue(unique_name("soak.tap"), exclusive=True)
        try:
            await tap.bind(exchange, routing_key="#")
            await asyncio.sleep(hold)
            messages = []
            while (message := await tap.get(no_ack=True, fail=False)) is not None:
                messages.append(message)
            again = messages + random.sample(messages, len(messages) // 3)
            random.shuffle(again)
            for message in again:
                copy = aio_pika.Message(
                    body=message.body,
                    headers=message.headers,
                    message_id=message.message_id,
                    type=message.type,
                    app_id=message.app_id,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                await exchange.publish(copy, routing_key=message.routing_key or "")
            print(f"soak: {len(again)} deliveries again ({len(messages)} events), shuffled")
        finally:
            await tap.delete(if_unused=False, if_empty=False)


async def post_deleted_under_comments(_p: Platform, w: Workload, hold: float) -> None:
    """Posts deleted by their authors while others comment on them as fast as they can."""
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        author = random.choice(w.users[: w.workers * w.users_per_worker])
        await w.post(author)
        mine = [slug for slug, email in w.posts.items() if email == author.email]
        if not mine:
            continue
        slug = mine[-1]
        commenters = random.sample(w.users[: w.workers * w.users_per_worker], 4)
        burst = [_comment_on(w, user, slug) for user in commenters for _ in range(3)]
        await asyncio.gather(*burst, _delete_after(w, author, slug, 0.05))


async def _comment_on(w: Workload, user: User, slug: str) -> None:
    text = marker()
    op = w.history.new("comment", slug=slug, marker=text, author=user.email)
    await w.client.call(op, "POST", f"/articles/{slug}/comments", token=user.token, body={"comment": {"body": text}})


async def _delete_after(w: Workload, author: User, slug: str, delay: float) -> None:
    await asyncio.sleep(delay)
    op = w.history.new("delete-post", slug=slug)
    await w.client.call(op, "DELETE", f"/articles/{slug}", token=author.token)
    w.posts.pop(slug, None)


NO_FAULT_HOLD = 20.0  # seconds of the workload alone, first, at scale 1
SCHEDULE = (
    Fault("relay killed before marking", relay_killed, 40, quick=True),
    Fault("consumer killed before ack", consumer_killed_before_ack, 40),
    Fault("consumer killed mid-handler", consumer_killed_in_handler, 40),
    Fault("broker stop_app / start_app", broker_stopped, 8, shared_broker=True),
    Fault("broker hung (35 s)", broker_hung, 35, quick=True, fixed=True),
    Fault("broker connections closed", broker_cut, 10),
    Fault("broker memory alarm", broker_alarmed, 10, shared_broker=True),
    Fault("user database refusing (30 s)", database_refusing, 30, quick=True, fixed=True),
    Fault("PostgreSQL restarted", postgres_restarted, 6),
    Fault("user service frozen", service_hung, 8, quick=True),
    Fault("auth clocks 1 s apart", clocks_apart, 10, quick=True),
    Fault("deliveries duplicated, reordered", deliveries_duplicated, 15),
    Fault("post deleted under comments", post_deleted_under_comments, 15, quick=True),
)


# ---- the run ---------------------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    converged: float | None
    remaining: list[str]
    restarts: int


async def grant_moderator(p: Platform, user: User) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "auth",
        "grant-role",
        user.name,
        "moderator",
        env=p.apps.environment("auth-1"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"grant-role: {stderr.decode()}")


async def run(args: argparse.Namespace) -> int:
    schedule = [f for f in SCHEDULE if (f.quick or not args.quick) and not (f.shared_broker and args.quick)]
    # The full soak stretches every hold but the fixed ones (and the fault-free phase) alike, so the workload runs
    # `--duration` seconds in all under its schedule; convergence waits come on top. The quick one keeps the holds.
    fixed = sum(f.hold for f in schedule if f.fixed)
    stretched = NO_FAULT_HOLD + sum(f.hold for f in schedule if not f.fixed)
    scale = 1.0 if args.quick else max(args.duration - fixed, stretched) / stretched
    await check_connection_headroom()
    logs = Path(tempfile.mkdtemp(prefix="soak-logs-"))
    skew = HAVE_FAKETIME
    print(f"soak: {len(schedule)} faults, logs in {logs}; load average {os.getloadavg()[0]:.1f}", flush=True)
    results: list[PhaseResult] = []
    async with platform(logs, skew=skew) as p:
        history = History()
        client = Client(p.gateway, history)
        workload = Workload(client, workers=args.workers, users_per_worker=3)
        moderator = await workload.register("mod")
        assert moderator is not None, "the moderator could not register"
        await grant_moderator(p, moderator)
        login = history.new("login")
        answer = await client.call(
            login, "POST", "/users/login", body={"user": {"email": moderator.email, "password": PASSWORD}}
        )
        moderator.token = answer["user"]["token"]
        workload.moderator = moderator
        await workload.start()
        moderation = asyncio.create_task(workload.moderate())
        try:
            phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("no fault", partial(asyncio.sleep, 5 if args.quick else NO_FAULT_HOLD * scale))
            ]
            for fault in schedule:
                hold = fault.hold if fault.fixed else max(fault.hold * scale, fault.at_least)
                phases.append((fault.name, partial(fault.run, p, workload, hold)))
            for name, inject in phases:
                history.phase = name
                restarts = sum(p.apps.restarts.values())
                print(f"soak: {name}", flush=True)
                await inject()
                await asyncio.sleep(3)  # the workload goes on a moment past the fault
                workload.running.clear()
                converged, remaining = await converge(p, CONVERGE_WITHIN)
                results.append(PhaseResult(name, converged, remaining, sum(p.apps.restarts.values()) - restarts))
                print(
                    f"soak:   converged in {converged:.1f} s" if converged is not None else "soak:   NOT converged",
                    flush=True,
                )
                workload.running.set()
        finally:
            workload.running.clear()
            moderation.cancel()
            await workload.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await moderation
        history.phase = "the end"
        converged, remaining = await converge(p, CONVERGE_WITHIN)
        results.append(PhaseResult(history.phase, converged, remaining, 0))
        state = await read_state(p)
        await client.http.aclose()
    return report(history, results, check(history, state), client.server_errors)


WRITES = frozenset(
    {"register", "rename", "post", "edit", "delete-post", "comment", "delete-comment"}
    | {"favorite", "unfavorite", "follow", "unfollow", "approve", "reject"}
)
HEADER = (
    "fault",
    "writes",
    "accepted",
    "refused 503/504",
    "lost",
    "applied twice",
    "wrong answers",
    "violations left",
    "converged in",
    "restarts",
    "slowest answer",
)


def report(history: History, results: list[PhaseResult], found: Anomalies, server_errors: list[str]) -> int:
    """Print the table (one row per fault, in the README's Markdown), the anomalies; 1 when anything is wrong."""
    rows = [HEADER]
    for result in results:
        ops = [op for op in history.ops if op.phase == result.name]
        writes = [op for op in ops if op.kind in WRITES]
        rows.append(
            (
                result.name,
                str(len(writes)),
                str(sum(op.outcome == ACCEPTED for op in writes)),
                str(sum(op.outcome == REFUSED for op in writes)),
                str(found.lost[result.name]),
                str(found.twice[result.name]),
                str(found.wrong[result.name]),
                str(len(result.remaining)),
                f"{result.converged:.1f} s" if result.converged is not None else "no",
                str(result.restarts),
                f"{max((op.seconds for op in ops), default=0):.2f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    print()
    for n, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    print()
    print(f"soak: {len(history.ops)} requests, {sum(op.kind in WRITES for op in history.ops)} of them writes")
    for note in found.notes[:30]:
        print(f"soak: {note}")
    for error in server_errors[:10]:
        print(f"soak: a 5xx other than 503/504: {error}")
    unsettled = [result for result in results if result.remaining]
    for result in unsettled:
        print(f"soak: not converged after {result.name}: {result.remaining[:5]}")
    if failed := bool(found.total() or server_errors or unsettled):
        print("soak: FAILED")
    else:
        print("soak: passed: nothing lost, nothing applied twice, no wrong answer, every invariant holds")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the faults behind the fixed defects (make test)")
    parser.add_argument(
        "--duration", type=float, default=600, help="seconds of workload under all faults, convergence aside (600)"
    )
    parser.add_argument("--workers", type=int, default=6, help="concurrent users' loops (6)")
    sys.exit(asyncio.run(_cancelled_on_sigterm(run(parser.parse_args()))))


async def _cancelled_on_sigterm(work: Awaitable[int]) -> int:
    """SIGTERM (a CI timeout, `kill`) cancels the run like Ctrl-C does, so every fault is undone and every process,
    database and vhost cleaned up on the way out."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


if __name__ == "__main__":
    main()
