"""Rate limits: a full window answers 429 with Retry-After; with Redis, gateway replicas share one count."""

import uuid

import pytest

from comm.errors import RateLimited
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings


async def test_the_sixth_login_in_a_minute_is_refused_with_retry_after() -> None:
    limiter = RateLimiter(GatewaySettings(rate_limit_login="5/minute"))
    key = str(uuid.uuid4())
    for _ in range(5):
        await limiter.hit(limiter.limits.login, "login", key)
    with pytest.raises(RateLimited) as refused:
        await limiter.hit(limiter.limits.login, "login", key)
    assert 1 <= refused.value.retry_after <= 60
    await limiter.hit(limiter.limits.login, "login", "someone-else")  # keys are counted apart


async def test_replicas_share_the_count_through_redis() -> None:
    settings = GatewaySettings(redis_url="redis://127.0.0.1:6379/0", rate_limit_register="3/minute")
    first, second = RateLimiter(settings), RateLimiter(settings)  # two gateway processes
    key = f"test-{uuid.uuid4()}"
    await first.hit(first.limits.register, "register", key)
    await second.hit(second.limits.register, "register", key)
    await first.hit(first.limits.register, "register", key)
    with pytest.raises(RateLimited):
        await second.hit(second.limits.register, "register", key)


async def test_without_redis_each_process_counts_alone() -> None:
    settings = GatewaySettings(rate_limit_register="1/minute")
    first, second = RateLimiter(settings), RateLimiter(settings)
    await first.hit(first.limits.register, "register", "k")
    await second.hit(second.limits.register, "register", "k")
