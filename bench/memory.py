"""Resident memory of each app serving, for sizing the pods' requests and limits (`make bench-memory`).

The five apps start as local processes (comm.testing.local_platform) with the production overlay's pool sizes,
then a workload goes through the gateway: users register, sign in (a burst of logins at once, so auth's Argon2id
runs pile up to `AUTH_PASSWORD_HASH_CONCURRENCY`), write articles and comments and read them back. Each app's RSS
is sampled from /proc throughout; the table shows it at rest after start-up and its peak (VmHWM), in MiB.

    python bench/memory.py [--concurrency 2 32] [--users 40]
"""

import argparse
import asyncio
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from comm.testing import LocalApps, local_platform

POOLS = {
    f"{s.upper()}_DATABASE_{kind}POOL_SIZE": "5" for s in ("auth", "blog", "user", "comment") for kind in ("", "READ_")
}
UNLIMITED = {f"GATEWAY_RATE_LIMIT_{name}": "100000/minute" for name in ("LOGIN", "REGISTER", "COMMENT")}


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """One line of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


async def workload(gateway: str, *, users: int) -> None:
    """Register `users`, sign them all in at once, each writes an article and a comment, everyone reads."""
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as api:

        async def call(method: str, path: str, token: str | None = None, body: Any = None) -> dict[str, Any]:
            headers = {"Authorization": f"Token {token}"} if token else {}
            response = await api.request(method, path, json=body, headers=headers)
            response.raise_for_status()
            return dict(response.json()) if response.content else {}

        names = [f"m{uuid.uuid4().hex[:10]}" for _ in range(users)]
        for name in names:  # one at a time: registering is not what is measured
            await call(
                "POST", "/users", body={"user": {"username": name, "email": f"{name}@x.io", "password": "pw-12345678"}}
            )
        logins = [
            call("POST", "/users/login", body={"user": {"email": f"{name}@x.io", "password": "pw-12345678"}})
            for name in names
        ]
        tokens = [answer["user"]["token"] for answer in await asyncio.gather(*logins)]
        article = {"title": "t", "description": "d", "body": "b" * 2000, "tagList": ["memory"]}
        slugs = [
            (await call("POST", "/articles", token, {"article": {**article, "title": f"T {uuid.uuid4()}"}}))["article"][
                "slug"
            ]
            for token in tokens
        ]
        await asyncio.gather(
            *(
                call("POST", f"/articles/{slug}/comments", token, {"comment": {"body": "c"}})
                for slug, token in zip(slugs, tokens, strict=True)
            )
        )
        for _ in range(5):
            await asyncio.gather(
                call("GET", "/articles?limit=20"),
                *(call("GET", f"/articles/{slug}/comments") for slug in slugs[:20]),
                *(call("GET", f"/profiles/{name}") for name in names[:20]),
            )


async def sample(apps: LocalApps, peaks: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for service, process in apps.processes.items():
            peaks[service] = max(peaks.get(service, 0), rss_mib(process.pid))
        await asyncio.sleep(0.05)


async def measure(*, concurrency: int, users: int) -> tuple[dict[str, float], dict[str, float]]:
    """(RSS at rest after start-up, peak RSS) per app, in MiB."""
    env: Mapping[str, str] = {**POOLS, **UNLIMITED, "AUTH_PASSWORD_HASH_CONCURRENCY": str(concurrency)}
    with tempfile.TemporaryDirectory() as logs:
        async with local_platform(LocalApps, name="memory", logs=Path(logs), extra_env=env) as apps:
            await asyncio.sleep(2)
            rest = {service: rss_mib(process.pid) for service, process in apps.processes.items()}
            peaks: dict[str, float] = {}
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(apps, peaks, stop))
            try:
                await workload(apps.gateway, users=users)
            finally:
                stop.set()
                await sampler
            peak = {s: max(peaks.get(s, 0), rss_mib(p.pid, "VmHWM")) for s, p in apps.processes.items()}
    return rest, peak


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 32], help="AUTH_PASSWORD_HASH_CONCURRENCY")
    parser.add_argument("--users", type=int, default=40)
    args = parser.parse_args()
    for concurrency in args.concurrency:
        rest, peak = await measure(concurrency=concurrency, users=args.users)
        print(f"\nAUTH_PASSWORD_HASH_CONCURRENCY={concurrency}, {args.users} users, a burst of {args.users} logins")
        print(f"{'app':<10}{'at rest MiB':>14}{'peak MiB':>12}")
        for service in rest:
            print(f"{service:<10}{rest[service]:>14.0f}{peak[service]:>12.0f}")


if __name__ == "__main__":
    asyncio.run(main())
