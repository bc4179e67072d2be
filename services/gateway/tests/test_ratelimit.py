"""Rate limits: a full window answers 429 with Retry-After; with Redis, gateway replicas share one count; the client
address is the peer's unless a trusted proxy forwards it."""

import uuid

import httpx
import pytest

from comm.errors import RateLimited, Unauthorized, UpstreamClientError
from gateway.deps import client_address
from gateway.main import create_app
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


async def test_only_failed_logins_count_in_their_three_windows() -> None:
    settings = GatewaySettings(rate_limit_login="2/minute", rate_limit_login_address="3/minute")
    limiter = RateLimiter(settings)
    address, email = str(uuid.uuid4()), f"{uuid.uuid4()}@mail.com"
    for _ in range(5):  # successes and other errors are not failed logins
        async with limiter.failed_logins(address=address, email=email):
            pass
        with pytest.raises(UpstreamClientError):
            async with limiter.failed_logins(address=address, email=email):
                raise UpstreamClientError(upstream_status=422)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            async with limiter.failed_logins(address=address, email=email):
                raise Unauthorized
    with pytest.raises(RateLimited):  # per address and email
        async with limiter.failed_logins(address=address, email=email):
            pass
    with pytest.raises(Unauthorized):
        async with limiter.failed_logins(address=address, email="other@mail.com"):
            raise Unauthorized
    with pytest.raises(RateLimited):  # per address, across accounts
        async with limiter.failed_logins(address=address, email="third@mail.com"):
            pass


async def test_failed_logins_for_one_account_count_across_addresses() -> None:
    limiter = RateLimiter(GatewaySettings(rate_limit_login_account="3/minute"))
    email = f"{uuid.uuid4()}@mail.com"
    for _ in range(3):
        with pytest.raises(Unauthorized):
            async with limiter.failed_logins(address=str(uuid.uuid4()), email=email):
                raise Unauthorized
    with pytest.raises(RateLimited) as refused:
        async with limiter.failed_logins(address=str(uuid.uuid4()), email=email):
            pass
    assert 1 <= refused.value.retry_after <= 60


async def test_forwarded_headers_are_trusted_from_the_configured_proxies_only() -> None:
    """The ASGI test client connects from 127.0.0.1, standing in for an ingress or for a client."""

    async def seen(settings: GatewaySettings, forwarded: str) -> str:
        app = create_app(settings)
        app.get("/whoami")(client_address)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.get("/whoami", headers={"X-Forwarded-For": forwarded})
        return str(response.json())

    assert await seen(GatewaySettings(), "203.0.113.7") == "127.0.0.1"
    behind = GatewaySettings(trusted_proxies="10.0.0.0/8, 127.0.0.0/8")
    assert await seen(behind, "203.0.113.7") == "203.0.113.7"
    # The client may prepend anything: the address the last trusted proxy saw is the one that counts.
    assert await seen(behind, "198.51.100.1, 203.0.113.7, 10.1.2.3") == "203.0.113.7"


def test_trusted_proxies_must_be_addresses_or_ranges() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        GatewaySettings(trusted_proxies="ingress.local")
