"""Internal tokens: a valid one yields the identity; anything else is 401 from the protected route."""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from fastapi import FastAPI

from comm.errors import install_error_handlers
from comm.settings import CommSettings
from comm.tokens import (
    HEADER,
    CallerIdentity,
    Identity,
    InternalTokens,
    InvalidInternalToken,
    setup_internal_tokens,
)

SECRET = "test-internal-secret-0123456789abcdef"
USER = Identity(user_id=uuid.uuid4(), roles=frozenset({"moderator"}))


def _tokens(service: str = "gateway", *, secret: str = SECRET, clock: float | None = None) -> InternalTokens:
    now = time.time if clock is None else (lambda: clock)
    return InternalTokens(secret=secret, service=service, ttl_seconds=60, clock=now)


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    setup_internal_tokens(app, CommSettings(service_name="blog", internal_token_secret=SECRET))

    @app.get("/whoami")
    async def whoami(identity: CallerIdentity) -> dict[str, object]:
        return {"user_id": str(identity.user_id), "roles": sorted(identity.roles), "caller": identity.caller}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(_app()), base_url="http://blog") as client:
        yield client


async def test_valid_token_yields_the_identity(client: httpx.AsyncClient) -> None:
    token = _tokens().mint(audience="blog", identity=USER)
    response = await client.get("/whoami", headers={HEADER: token})
    assert response.status_code == 200
    assert response.json() == {"user_id": str(USER.user_id), "roles": ["moderator"], "caller": "gateway"}


async def test_service_token_has_no_user(client: httpx.AsyncClient) -> None:
    token = _tokens("comment").mint(audience="blog", identity=Identity())
    response = await client.get("/whoami", headers={HEADER: token})
    assert response.json() == {"user_id": "None", "roles": [], "caller": "comment"}
    assert "sub" not in jwt.decode(token, options={"verify_signature": False})


def _forged(claims: dict[str, object], header: dict[str, object]) -> str:
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{encode(header)}.{encode(claims)}."


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "typ": "internal",
        "iss": "gateway",
        "aud": "blog",
        "sub": str(USER.user_id),
        "roles": ["admin"],
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return claims | changes


def _bad_tokens() -> dict[str, str]:
    valid = _tokens().mint(audience="blog", identity=USER)
    head, body, signature = valid.split(".")
    tampered_body = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) | {"roles": ["admin"]}
    tampered = ".".join([head, _forged(tampered_body, {}).split(".")[1], signature])
    return {
        "wrong audience": _tokens().mint(audience="auth", identity=USER),
        "expired": _tokens(clock=time.time() - 3600).mint(audience="blog", identity=USER),
        "tampered": tampered,
        "other secret": _tokens(secret="another-secret-0123456789abcdefghij").mint(audience="blog", identity=USER),
        "alg none": _forged(_claims(), {"alg": "none", "typ": "JWT"}),
        "user token": jwt.encode(_claims(typ="access"), SECRET, algorithm="HS256"),
        "no typ": jwt.encode({k: v for k, v in _claims().items() if k != "typ"}, SECRET, algorithm="HS256"),
        "not a uuid": jwt.encode(_claims(sub="alice"), SECRET, algorithm="HS256"),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize("case", list(_bad_tokens()))
async def test_bad_tokens_are_401(client: httpx.AsyncClient, case: str) -> None:
    response = await client.get("/whoami", headers={HEADER: _bad_tokens()[case]})
    assert response.status_code == 401
    assert response.json() == {"errors": {"body": ["invalid internal token"]}}


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami")
    assert response.status_code == 401
    assert response.json() == {"errors": {"body": ["internal token required"]}}


def test_claims_of_a_minted_token() -> None:
    token = _tokens().mint(audience="blog", identity=USER)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="blog")
    assert claims["typ"] == "internal"
    assert claims["iss"] == "gateway"
    assert claims["sub"] == str(USER.user_id)
    assert claims["roles"] == ["moderator"]
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"]


def test_tokens_are_reused_for_half_their_life() -> None:
    now = [1_000_000.0]
    tokens = InternalTokens(secret=SECRET, service="gateway", ttl_seconds=60, clock=lambda: now[0])
    first = tokens.mint(audience="blog", identity=USER)
    assert tokens.mint(audience="blog", identity=USER) == first
    assert tokens.mint(audience="user", identity=USER) != first
    now[0] += 31
    assert tokens.mint(audience="blog", identity=USER) != first


def test_a_verified_token_is_reused_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    sender = InternalTokens(secret=SECRET, service="gateway", ttl_seconds=60, clock=lambda: now[0])
    receiver = InternalTokens(secret=SECRET, service="blog", ttl_seconds=60, clock=lambda: now[0])
    decoded = []
    decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(1) or decode(*a, **k))
    token = sender.mint(audience="blog", identity=USER)
    first = receiver.verify(token)
    assert receiver.verify(token) == first == Identity(USER.user_id, USER.roles, caller="gateway")
    assert len(decoded) == 1  # the second call is answered from the cache
    now[0] += 60 + 5  # past `exp` and the leeway: the cached identity is no longer good, and neither is the token
    with pytest.raises(InvalidInternalToken):
        receiver.verify(token)


def test_a_token_for_another_audience_is_refused_every_time() -> None:
    token = _tokens().mint(audience="user", identity=USER)
    receiver = _tokens("blog")
    for _ in range(2):  # a refusal is never cached as an identity
        with pytest.raises(InvalidInternalToken):
            receiver.verify(token)
