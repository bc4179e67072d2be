"""Whom each signed-in viewer follows, kept by the gateway, so a signed-in read asks the user service nothing for
`following` (an article, a page, the feed, comments: one call each, to the service that holds them).

The user service holds the follows. The gateway keeps each viewer's whole set (`GET /profiles/me/following`, on
the first read that needs it) for `follows_cache_ttl_seconds`, and drops it whenever that viewer follows or
unfollows, before the answer to that request leaves: a viewer's follows change only through the gateway's follow
routes, so their next read, through any replica, fetches the set again and shows the change at once
(read-your-writes). Other viewers' follows never show in a viewer's `following`.

- One process (`make run`): in memory.
- Several replicas (REDIS_URL set, as compose and Kubernetes set it): in Redis, shared, as the rate limits are; a
  follow through one replica drops the set every replica reads.

A read that fetched the set just before a follow was stored must not put the old set back after the follow dropped
it: every drop bumps the viewer's generation, and a fetched set is kept only if the generation is still the one
seen before fetching (atomic in Redis: a script). Redis unreachable: reads ask the user service as before and a
drop is logged; a set the failed drop left in Redis is gone within the TTL.

Hand-written: cachetools gives the memory TTL, coredis the Redis calls; no caching library we found keeps
per-key generations against this race (cashews, aiocache and async-lru invalidate, but a concurrent fill can
still put the old value back).
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import coredis
import coredis.exceptions
from cachetools import TTLCache

log = logging.getLogger(__name__)

FollowedIds = frozenset[uuid.UUID]
Fetch = Callable[[], Awaitable[list[uuid.UUID]]]
# How long a drop is remembered against fills that started before it: longer than any fetch can take (the
# gateway's request deadline is seconds).
DROP_MEMORY_SECONDS = 600


class Store(Protocol):
    async def get(self, viewer_id: uuid.UUID) -> tuple[FollowedIds | None, str | None]:
        """The viewer's set if kept, and the generation a fill must match (None: do not fill)."""

    async def fill(self, viewer_id: uuid.UUID, followed: FollowedIds, generation: str) -> None:
        """Keep the set, unless a drop came after `generation` was read."""

    async def drop(self, viewer_id: uuid.UUID) -> None:
        """Forget the set and make fills that read the generation before this one do nothing."""

    async def aclose(self) -> None: ...


class MemoryStore:
    """One process's sets; the generation is a counter shared by all viewers."""

    def __init__(self, *, ttl_seconds: float, size: int) -> None:
        self._sets: TTLCache[uuid.UUID, FollowedIds] = TTLCache(maxsize=size, ttl=ttl_seconds)
        self._dropped: TTLCache[uuid.UUID, int] = TTLCache(maxsize=size, ttl=DROP_MEMORY_SECONDS)
        self._now = 0  # the latest drop's generation

    async def get(self, viewer_id: uuid.UUID) -> tuple[FollowedIds | None, str | None]:
        return self._sets.get(viewer_id), str(self._now)

    async def fill(self, viewer_id: uuid.UUID, followed: FollowedIds, generation: str) -> None:
        if self._dropped.get(viewer_id, 0) <= int(generation):
            self._sets[viewer_id] = followed

    async def drop(self, viewer_id: uuid.UUID) -> None:
        self._now += 1
        self._dropped[viewer_id] = self._now
        self._sets.pop(viewer_id, None)

    async def aclose(self) -> None:
        pass


# KEYS: the set, the generation. ARGV: the generation read before fetching, the set, its TTL in seconds.
_FILL = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 0
"""
# KEYS: the set, the generation. ARGV: how long the generation is kept, in seconds.
_DROP = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 0
"""


class RedisStore:
    """The sets shared by every replica: `gateway:follows:<viewer>` (ids, comma-separated) and its generation."""

    def __init__(self, url: str, *, ttl_seconds: float) -> None:
        self._redis: coredis.Redis[str] = coredis.Redis.from_url(url, decode_responses=True)
        self._ttl = max(1, round(ttl_seconds))
        self._fill = self._redis.register_script(_FILL)
        self._drop = self._redis.register_script(_DROP)

    @staticmethod
    def _keys(viewer_id: uuid.UUID) -> tuple[str, str]:
        return f"gateway:follows:{viewer_id}", f"gateway:follows:{viewer_id}:generation"

    async def get(self, viewer_id: uuid.UUID) -> tuple[FollowedIds | None, str | None]:
        try:
            kept, generation = await self._redis.mget(self._keys(viewer_id))
        except coredis.exceptions.RedisError as exc:
            log.warning("follows cache unavailable (%s): asking the user service", type(exc).__name__)
            return None, None
        if kept is None:
            return None, generation or "0"
        return frozenset(uuid.UUID(user_id) for user_id in kept.split(",") if user_id), None

    async def fill(self, viewer_id: uuid.UUID, followed: FollowedIds, generation: str) -> None:
        value = ",".join(str(user_id) for user_id in followed)
        try:
            await self._fill(keys=self._keys(viewer_id), args=[generation, value, str(self._ttl)])
        except coredis.exceptions.RedisError as exc:
            log.warning("follows cache unavailable (%s): set not kept", type(exc).__name__)

    async def drop(self, viewer_id: uuid.UUID) -> None:
        try:
            await self._drop(keys=self._keys(viewer_id), args=[str(DROP_MEMORY_SECONDS)])
        except coredis.exceptions.RedisError as exc:
            log.error("follows cache unavailable (%s): %s's kept set not dropped", type(exc).__name__, viewer_id)

    async def aclose(self) -> None:
        self._redis.connection_pool.disconnect()


class Follows:
    """`followed_by(viewer_id, fetch)`: the set, kept or fetched; `changed(viewer_id)` after a follow or unfollow."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def from_settings(cls, *, redis_url: str | None, ttl_seconds: float, size: int) -> "Follows":
        if redis_url:
            return cls(RedisStore(redis_url, ttl_seconds=ttl_seconds))
        return cls(MemoryStore(ttl_seconds=ttl_seconds, size=size))

    async def followed_by(self, viewer_id: uuid.UUID, fetch: Fetch) -> FollowedIds:
        kept, generation = await self._store.get(viewer_id)
        if kept is not None:
            return kept
        followed = frozenset(await fetch())
        if generation is not None:
            await self._store.fill(viewer_id, followed, generation)
        return followed

    async def changed(self, viewer_id: uuid.UUID) -> None:
        await self._store.drop(viewer_id)

    async def aclose(self) -> None:
        await self._store.aclose()
