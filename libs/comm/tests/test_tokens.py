"""Internal tokens: a valid one from a caller the route takes yields the identity; a valid one from another caller is
403; anything else (another key, a forged or tampered token, a token signed by one service claiming to be another)
is 401."""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI

from comm.errors import install_error_handlers
from comm.keys import development_key, encode_public_key, format_public_keys, generate_key
from comm.reads import Read, Reader, read_as, viewer_of
from comm.settings import CommSettings
from comm.tokens import (
    GATEWAY,
    HEADER,
    CallerIdentity,
    Identity,
    InternalTokens,
    InvalidInternalToken,
    identity_from,
    setup_internal_tokens,
)

USER = Identity(user_id=uuid.uuid4(), roles=frozenset({"moderator"}))
KEYS = {name: generate_key() for name in ("gateway", "comment", "blog")}
PUBLIC_KEYS = {name: (key.public_key(),) for name, key in KEYS.items()}


def _tokens(
    service: str = "gateway", *, key: Ed25519PrivateKey | None = None, clock: float | None = None
) -> InternalTokens:
    now = time.time if clock is None else (lambda: clock)
    signing = KEYS[service] if key is None else key
    return InternalTokens(service=service, key=signing, public_keys=PUBLIC_KEYS, ttl_seconds=60, clock=now)


def _app(public_keys: str = format_public_keys((n, k[0]) for n, k in PUBLIC_KEYS.items())) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    setup_internal_tokens(app, CommSettings(service_name="blog", internal_token_public_keys=public_keys))

    @app.get("/whoami")
    async def whoami(identity: CallerIdentity) -> dict[str, object]:
        return {"user_id": str(identity.user_id), "roles": sorted(identity.roles), "caller": identity.caller}

    @app.get("/open")
    async def open_to_all() -> dict[str, object]:
        return {}

    @app.get("/shared")
    async def shared(identity: Annotated[Identity, Depends(identity_from(GATEWAY, "comment"))]) -> dict[str, object]:
        return {"caller": identity.caller}

    app.state.read_pool = READ_POOL  # what comm.reads hands a read, here a stand-in (no query is made)

    @app.get("/read")
    async def read(read: Reader) -> dict[str, object]:
        return {"viewer": str(read.caller), "pool": read.db is READ_POOL}

    shared_read = read_as(viewer_of, callers=(GATEWAY, "comment"))

    @app.get("/read-shared")
    async def read_shared(read: Annotated[Read[uuid.UUID | None], Depends(shared_read)]) -> dict[str, object]:
        return {"viewer": read.caller}

    return app


READ_POOL = object()


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
    response = await client.get("/shared", headers={HEADER: token})
    assert response.json() == {"caller": "comment"}
    assert "sub" not in jwt.decode(token, options={"verify_signature": False})


async def test_a_route_takes_only_the_callers_it_names(client: httpx.AsyncClient) -> None:
    """Only the gateway by default; a route others call names them. A valid token of another caller is 403."""
    from_comment = {HEADER: _tokens("comment").mint(audience="blog", identity=USER)}
    response = await client.get("/whoami", headers=from_comment)
    assert response.status_code == 403
    assert response.json() == {"errors": {"body": ["this route does not take calls from this service"]}}
    assert (await client.get("/shared", headers=from_comment)).status_code == 200
    from_gateway = {HEADER: _tokens().mint(audience="blog", identity=USER)}
    assert (await client.get("/shared", headers=from_gateway)).status_code == 200


async def test_during_a_rotation_both_keys_of_a_caller_are_accepted() -> None:
    new = generate_key()
    both = format_public_keys([("gateway", KEYS["gateway"].public_key()), ("gateway", new.public_key())])
    transport = httpx.ASGITransport(_app(both))
    async with httpx.AsyncClient(transport=transport, base_url="http://blog") as client:
        for key in (KEYS["gateway"], new):
            token = _tokens(key=key).mint(audience="blog", identity=USER)
            assert (await client.get("/whoami", headers={HEADER: token})).status_code == 200
        token = _tokens("comment").mint(audience="blog", identity=USER)  # comment is not in this set at all
        assert (await client.get("/shared", headers={HEADER: token})).status_code == 401


async def test_without_public_keys_every_callers_development_key_is_accepted_and_only_it() -> None:
    """What `make run` and compose do (ENVIRONMENT=local): no keys set up; production refuses it (test_keys.py)."""
    app = FastAPI()
    install_error_handlers(app)
    setup_internal_tokens(app, CommSettings(service_name="blog"))

    @app.get("/whoami")
    async def whoami(identity: CallerIdentity) -> dict[str, object]:
        return {"caller": identity.caller}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://blog") as client:
        development = InternalTokens.development("gateway").mint(audience="blog", identity=USER)
        assert (await client.get("/whoami", headers={HEADER: development})).json() == {"caller": "gateway"}
        configured = _tokens().mint(audience="blog", identity=USER)
        assert (await client.get("/whoami", headers={HEADER: configured})).status_code == 401


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
    comment = KEYS["comment"]
    gateway_public = encode_public_key(KEYS["gateway"].public_key())  # published: an attacker has it
    head, body, signature = valid.split(".")
    tampered_body = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) | {"roles": ["admin"]}
    tampered = ".".join([head, _forged(tampered_body, {}).split(".")[1], signature])
    return {
        "wrong audience": _tokens().mint(audience="auth", identity=USER),
        "expired": _tokens(clock=time.time() - 3600).mint(audience="blog", identity=USER),
        "tampered": tampered,
        "another key": _tokens(key=generate_key()).mint(audience="blog", identity=USER),
        "the development key": _tokens(key=development_key("gateway")).mint(audience="blog", identity=USER),
        "comment's key claiming to be the gateway": _tokens(key=comment).mint(audience="blog", identity=USER),
        "unknown issuer": jwt.encode(_claims(iss="intruder"), comment, algorithm="EdDSA"),
        "no issuer": jwt.encode({k: v for k, v in _claims().items() if k != "iss"}, comment, algorithm="EdDSA"),
        "alg none": _forged(_claims(), {"alg": "none", "typ": "JWT"}),
        "HS256 with the public key as secret": jwt.encode(_claims(), gateway_public, algorithm="HS256"),
        "user token": jwt.encode(_claims(typ="access"), KEYS["gateway"], algorithm="EdDSA"),
        "no typ": jwt.encode({k: v for k, v in _claims().items() if k != "typ"}, KEYS["gateway"], algorithm="EdDSA"),
        "not a uuid": jwt.encode(_claims(sub="alice"), KEYS["gateway"], algorithm="EdDSA"),
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


def test_the_openapi_names_the_header_on_the_operations_that_take_it() -> None:
    schema = _app().openapi()
    assert schema["components"]["securitySchemes"]["internalToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": HEADER,
    }
    paths = schema["paths"]
    assert paths["/whoami"]["get"]["security"] == [{"internalToken": []}]
    assert paths["/shared"]["get"]["security"] == [{"internalToken": []}]
    assert "security" not in paths["/open"]["get"]


def test_an_app_whose_routes_take_no_token_has_no_such_scheme() -> None:
    app = FastAPI()
    setup_internal_tokens(app, CommSettings(service_name="gateway"))

    @app.get("/open")
    async def open_to_all() -> dict[str, object]:
        return {}

    assert "internalToken" not in app.openapi().get("components", {}).get("securitySchemes", {})


def test_claims_of_a_minted_token() -> None:
    token = _tokens().mint(audience="blog", identity=USER)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, KEYS["gateway"].public_key(), algorithms=["EdDSA"], audience="blog")
    assert claims["typ"] == "internal"
    assert claims["iss"] == "gateway"
    assert claims["sub"] == str(USER.user_id)
    assert claims["roles"] == ["moderator"]
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"]


def test_tokens_are_reused_for_half_their_life() -> None:
    now = [1_000_000.0]
    tokens = InternalTokens(
        service="gateway", key=KEYS["gateway"], public_keys=PUBLIC_KEYS, ttl_seconds=60, clock=lambda: now[0]
    )
    first = tokens.mint(audience="blog", identity=USER)
    assert tokens.mint(audience="blog", identity=USER) == first
    assert tokens.mint(audience="user", identity=USER) != first
    now[0] += 31
    assert tokens.mint(audience="blog", identity=USER) != first


def test_a_verified_token_is_reused_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    sender = InternalTokens(
        service="gateway", key=KEYS["gateway"], public_keys=PUBLIC_KEYS, ttl_seconds=60, clock=lambda: now[0]
    )
    receiver = InternalTokens(
        service="blog", key=KEYS["blog"], public_keys=PUBLIC_KEYS, ttl_seconds=60, clock=lambda: now[0]
    )
    decoded = []
    decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(1) or decode(*a, **k))
    token = sender.mint(audience="blog", identity=USER)
    first = receiver.verify(token)
    assert receiver.verify(token) == first == Identity(USER.user_id, USER.roles, caller="gateway")
    assert len(decoded) == 2  # the issuer read unverified, then the token verified; the second call is from the cache
    now[0] += 60 + 5  # past `exp` and the leeway: the cached identity is no longer good, and neither is the token
    with pytest.raises(InvalidInternalToken):
        receiver.verify(token)


def test_a_token_for_another_audience_is_refused_every_time() -> None:
    token = _tokens().mint(audience="user", identity=USER)
    receiver = _tokens("blog")
    for _ in range(2):  # a refusal is never cached as an identity
        with pytest.raises(InvalidInternalToken):
            receiver.verify(token)


async def test_a_read_gets_the_pool_and_the_viewer_in_one_dependency_with_the_same_checks(
    client: httpx.AsyncClient,
) -> None:
    """comm.reads: the caller checks of from_identity (401, 403, the callers named), and the OpenAPI says so."""
    from_gateway = {HEADER: _tokens().mint(audience="blog", identity=USER)}
    assert (await client.get("/read", headers=from_gateway)).json() == {"viewer": str(USER.user_id), "pool": True}
    assert (await client.get("/read")).status_code == 401
    assert (await client.get("/read", headers={HEADER: "not.a.token"})).status_code == 401
    service = {HEADER: _tokens("comment").mint(audience="blog", identity=Identity())}
    assert (await client.get("/read", headers=service)).status_code == 403
    assert (await client.get("/read-shared", headers=service)).json() == {"viewer": None}
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/read"]["get"]["security"] == paths["/whoami"]["get"]["security"] == [{"internalToken": []}]
