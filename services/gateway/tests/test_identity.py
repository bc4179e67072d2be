"""Token validation: good answers are cached for the TTL only, refusals never; forged headers are dropped."""

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI, Request

from comm.errors import install_error_handlers
from comm.http.clients import AuthServiceClient, TokenRejected
from comm.tokens import HEADER
from gateway.edge import EdgeMiddleware
from gateway.identity import TokenValidator
from gateway.main import create_app
from gateway.settings import GatewaySettings

USER = {"id": str(uuid.uuid4()), "username": "alice", "email": "alice@example.com", "roles": []}


def _auth(calls: list[str], *, accept: bool = True) -> AuthServiceClient:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if accept:
            return httpx.Response(200, json=USER)
        return httpx.Response(401, json={"errors": {"body": ["token is invalid"]}})

    return AuthServiceClient(settings=GatewaySettings(), transport=httpx.MockTransport(handler))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_valid_token_is_asked_once_per_ttl() -> None:
    calls: list[str] = []
    clock = Clock()
    validator = TokenValidator(_auth(calls), ttl_seconds=5, size=100, timer=clock)
    assert (await validator.validate("t")).username == "alice"
    await validator.validate("t")
    assert calls == ["/auth/validate"]
    clock.now = 5.1  # revocation takes effect within the TTL: the next use asks auth again
    await validator.validate("t")
    assert len(calls) == 2


async def test_refusals_are_not_cached() -> None:
    calls: list[str] = []
    validator = TokenValidator(_auth(calls, accept=False), ttl_seconds=5, size=100)
    for _ in range(2):
        with pytest.raises(TokenRejected):
            await validator.validate("bad")
    assert len(calls) == 2


async def test_concurrent_requests_with_one_token_share_one_validation_and_its_refusal() -> None:
    calls: list[str] = []
    accept = True

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        await asyncio.sleep(0.05)  # auth takes a moment: every request below arrives meanwhile
        if accept:
            return httpx.Response(200, json=USER)
        return httpx.Response(401, json={"errors": {"body": ["token is invalid"]}})

    auth = AuthServiceClient(settings=GatewaySettings(), transport=httpx.MockTransport(handler))
    validator = TokenValidator(auth, ttl_seconds=5, size=100)
    users = await asyncio.gather(*(validator.validate("t") for _ in range(20)))
    assert {user.username for user in users} == {"alice"}
    assert calls == ["/auth/validate"]

    accept = False
    refusals = await asyncio.gather(*(validator.validate("bad") for _ in range(20)), return_exceptions=True)
    assert all(isinstance(refusal, TokenRejected) for refusal in refusals)
    assert len(calls) == 2
    with pytest.raises(TokenRejected):  # shared, not cached: the next request asks again
        await validator.validate("bad")
    assert len(calls) == 3


async def test_a_request_that_goes_away_does_not_cancel_the_validation_others_wait_for() -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        await asyncio.sleep(0.05)
        return httpx.Response(200, json=USER)

    auth = AuthServiceClient(settings=GatewaySettings(), transport=httpx.MockTransport(handler))
    validator = TokenValidator(auth, ttl_seconds=5, size=100)
    leaving = asyncio.create_task(validator.validate("t"))
    staying = asyncio.create_task(validator.validate("t"))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert (await staying).username == "alice"
    assert calls == ["/auth/validate"]


async def test_edge_drops_identity_headers_and_marks_authenticated_answers_no_store() -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware)

    @app.get("/echo")
    async def echo(request: Request) -> dict[str, str | None]:
        return {name: request.headers.get(name) for name in (HEADER, "x-user-id", "authorization")}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway") as client:
        forged = await client.get("/echo", headers={HEADER: "forged", "X-User-Id": "victim"})
        signed_in = await client.get("/echo", headers={"Authorization": "Token x"})
    assert forged.json() == {HEADER: None, "x-user-id": None, "authorization": None}
    assert "no-store" not in forged.headers.get("cache-control", "")
    assert signed_in.headers["cache-control"] == "no-store"


def test_the_openapi_says_which_operations_take_the_token_and_which_need_it() -> None:
    """The viewer dependencies read `Authorization` themselves; comm.openapi documents it as RealWorld's spec does."""
    schema = create_app(GatewaySettings()).openapi()
    paths = schema["paths"]
    assert schema["components"]["securitySchemes"]["Token"]["name"] == "Authorization"
    assert paths["/api/articles/{slug}"]["get"]["security"] == [{"Token": []}, {}]  # optional
    assert paths["/api/user"]["get"]["security"] == [{"Token": []}]  # required
    assert paths["/api/articles/feed"]["get"]["security"] == [{"Token": []}]
    assert "security" not in paths["/api/users/login"]["post"]
    assert "internalToken" not in schema["components"]["securitySchemes"]  # minted here, never taken
