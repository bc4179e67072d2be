"""Rate limits through the `limits` library: in memory by default, shared through Redis when REDIS_URL is set."""

import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from comm.errors import RateLimited
from gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class Limits:
    login: RateLimitItem
    register: RateLimitItem
    comment: RateLimitItem
    comment_anonymous: RateLimitItem


class RateLimiter:
    """Counts hits per (limit, key) in a moving window; over the limit raises RateLimited with Retry-After."""

    def __init__(self, settings: GatewaySettings) -> None:
        # Redis makes the limits hold across gateway replicas; memory is right for one process.
        url = settings.redis_url.replace("redis://", "async+redis://", 1) if settings.redis_url else "async+memory://"
        self._storage = storage_from_string(url)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self.limits = Limits(
            login=parse(settings.rate_limit_login),
            register=parse(settings.rate_limit_register),
            comment=parse(settings.rate_limit_comment),
            comment_anonymous=parse(settings.rate_limit_comment_anonymous),
        )

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one hit; RateLimited once the window is full."""
        if await self._limiter.hit(item, *key):
            return
        stats = await self._limiter.get_window_stats(item, *key)
        raise RateLimited(retry_after=max(1.0, stats.reset_time - time.time()))
