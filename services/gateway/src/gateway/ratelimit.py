"""Rate limits through the `limits` library: in memory by default, shared through Redis when REDIS_URL is set.

Logins count failures only, in three windows: per address and email, per address across all accounts (password
spraying), and per account across all addresses (one account guessed from many). A window that is full refuses
the next attempt with 429 and `Retry-After` before the password is checked; the per-account window is a short one,
so an attack on someone's account slows its owner down for at most that long instead of locking them out.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from comm.errors import AppError, RateLimited
from gateway.settings import GatewaySettings

Window = tuple[RateLimitItem, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Limits:
    login: RateLimitItem
    login_address: RateLimitItem
    login_account: RateLimitItem
    register: RateLimitItem
    update_user: RateLimitItem
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
            login_address=parse(settings.rate_limit_login_address),
            login_account=parse(settings.rate_limit_login_account),
            register=parse(settings.rate_limit_register),
            update_user=parse(settings.rate_limit_update_user),
            comment=parse(settings.rate_limit_comment),
            comment_anonymous=parse(settings.rate_limit_comment_anonymous),
        )

    async def hit(self, item: RateLimitItem, *key: str) -> None:
        """Count one hit; RateLimited once the window is full."""
        if await self._limiter.hit(item, *key):
            return
        raise await self._refusal(item, key)

    @asynccontextmanager
    async def failed_logins(self, *, address: str, email: str) -> AsyncIterator[None]:
        """Refuse a login while one of its windows of failures is full; a 401 inside counts in each of them."""
        windows: list[Window] = [
            (self.limits.login, ("login", address, email)),
            (self.limits.login_address, ("login-address", address)),
            (self.limits.login_account, ("login-account", email)),
        ]
        for item, key in windows:
            if not await self._limiter.test(item, *key):
                raise await self._refusal(item, key)
        try:
            yield
        except AppError as exc:
            if exc.status == 401:
                for item, key in windows:
                    await self._limiter.hit(item, *key)
            raise

    async def _refusal(self, item: RateLimitItem, key: tuple[str, ...]) -> RateLimited:
        stats = await self._limiter.get_window_stats(item, *key)
        return RateLimited(retry_after=max(1.0, stats.reset_time - time.time()))
