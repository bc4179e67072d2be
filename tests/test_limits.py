"""Rate limits through the public API, keyed on the real client address: each test calls from its own loopback
address (127.x.y.z reaches the gateway on 127.0.0.1), so its windows are its own."""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from tests.conftest import Stack
from tests.test_flows import signup


@asynccontextmanager
async def client_from(stack: Stack, address: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the public API connecting from `address` (a fresh loopback address by default)."""
    address = address or f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=stack.gateway, transport=transport, timeout=15) as client:
        yield client


def _login(email: str) -> dict[str, dict[str, str]]:
    return {"user": {"email": email, "password": "wrong-password"}}


def _email() -> str:
    return f"nobody{uuid.uuid4().hex[:10]}@mail.com"


async def test_a_rotating_x_forwarded_for_still_meets_429(stack: Stack) -> None:
    email = _email()
    async with client_from(stack) as api:
        statuses = []
        for attempt in range(6):
            forged = {"X-Forwarded-For": f"203.0.113.{attempt + 1}"}
            statuses.append((await api.post("/users/login", json=_login(email), headers=forged)).status_code)
    assert statuses == [401] * 5 + [429]


async def test_40_failed_logins_for_40_emails_from_one_address_meet_429(stack: Stack) -> None:
    async with client_from(stack) as api:
        statuses = [(await api.post("/users/login", json=_login(_email()))).status_code for _ in range(40)]
    assert statuses[:20] == [401] * 20  # GATEWAY_RATE_LIMIT_LOGIN_ADDRESS, 20/minute
    assert set(statuses[20:]) == {429}


async def test_failed_logins_for_one_account_from_many_addresses_meet_429(stack: Stack) -> None:
    email = _email()
    statuses = []
    for _ in range(11):
        async with client_from(stack) as api:
            statuses.append((await api.post("/users/login", json=_login(email))).status_code)
    assert statuses == [401] * 10 + [429]  # GATEWAY_RATE_LIMIT_LOGIN_ACCOUNT, 10/minute


async def test_successful_logins_are_not_counted(stack: Stack) -> None:
    async with client_from(stack) as api:
        user = await signup(api)
        for _ in range(8):  # more than the 5 a minute allowed to fail for one account from one address
            body = {"user": {"email": user["email"], "password": "password"}}
            assert (await api.post("/users/login", json=body)).status_code == 200


async def test_40_updates_of_the_user_in_a_row_meet_429(stack: Stack) -> None:
    async with client_from(stack) as api:
        user = await signup(api)
        statuses = []
        for number in range(40):
            body = {"user": {"bio": f"bio {number}"}}
            statuses.append((await api.put("/user", json=body, headers=user["auth"])).status_code)
    assert statuses[:20] == [200] * 20  # GATEWAY_RATE_LIMIT_UPDATE_USER, 20/minute per user
    assert set(statuses[20:]) == {429}


async def test_logout_all_ends_every_earlier_token_within_the_cache_ttl(stack: Stack) -> None:
    async with client_from(stack) as api:
        user = await signup(api)
        login = {"user": {"email": user["email"], "password": "password"}}
        other = (await api.post("/users/login", json=login)).json()["user"]["token"]
        other_auth = {"Authorization": f"Token {other}"}
        assert (await api.get("/user", headers=other_auth)).status_code == 200  # cached by the gateway now
        assert (await api.post("/user/logout-all", headers=user["auth"])).status_code == 204
        assert (await api.get("/user", headers=user["auth"])).status_code == 401
        await asyncio.sleep(5.5)  # GATEWAY_TOKEN_CACHE_TTL_SECONDS
        assert (await api.get("/user", headers=other_auth)).status_code == 401
