"""User tokens: only a genuine, unexpired, unrevoked ES256 token for our audience validates."""

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth.settings import AuthSettings
from auth.signing import InvalidToken, TokenSigner, load_signing_key

Register = Callable[[], Awaitable[dict[str, Any]]]
Headers = Callable[..., dict[str, str]]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def _valid(client: httpx.AsyncClient, token: str) -> bool:
    response = await client.post("/auth/validate", json={"token": token})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def test_only_the_genuine_token_validates(
    client: httpx.AsyncClient, register: Register, headers_for: Headers, settings: AuthSettings
) -> None:
    user = await register()
    token = user["token"]
    claims = _claims(token)
    key = load_signing_key(settings)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload, signature = token.split(".")
    past = datetime.now(UTC) - timedelta(hours=2)
    forged = {
        "expired": jwt.encode({**claims, "iat": past, "exp": past + timedelta(hours=1)}, key, "ES256"),
        "tampered": f"{header}.{_b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "hs256 with the public key": _hs256(claims, public_pem),
        "wrong aud": jwt.encode({**claims, "aud": "someone-else"}, key, "ES256"),
        "wrong key": jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "internal typ": jwt.encode({**claims, "typ": "internal"}, key, "ES256"),
        "garbage": "not.a.token",
    }
    assert await _valid(client, token)
    for name, bad in forged.items():
        assert not await _valid(client, bad), name
    await client.patch(
        "/auth/users/me", json={"password": "another-password"}, headers=headers_for(uuid.UUID(user["id"]))
    )
    assert not await _valid(client, token), "revoked after a password change"


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """PyJWT refuses a PEM as an HMAC key, so this token is signed by hand, as an attacker would."""
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_login_refusals_take_comparable_time(client: httpx.AsyncClient, register: Register) -> None:
    """Unknown email vs wrong password: same status and body, medians within 25% over 20 tries each."""
    user = await register()
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    bodies = set()
    for _ in range(20):
        for kind, email in (("unknown", "nobody-here@mail.com"), ("wrong", user["email"])):
            started = time.perf_counter()
            response = await client.post("/auth/login", json={"email": email, "password": "not-the-password"})
            timings[kind].append(time.perf_counter() - started)
            bodies.add((response.status_code, response.text))
    assert len(bodies) == 1
    unknown, wrong = (sorted(values)[10] for values in timings.values())
    assert abs(unknown - wrong) <= 0.25 * max(unknown, wrong), (unknown, wrong)


def test_a_verified_token_is_checked_once_and_refused_once_it_expires(
    settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signer keeps verified claims until the token's own `exp`, not a moment longer."""
    signer = TokenSigner(settings.model_copy(update={"token_ttl_seconds": 1}))
    decoded: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    user_id = uuid.uuid4()
    token = signer.mint(user_id=user_id, version=3)
    assert signer.verify(token) == signer.verify(token)
    assert signer.verify(token).user_id == user_id
    assert len(decoded) == 1
    time.sleep(max(0.0, signer.verify(token).expires_at - time.time()) + 0.05)
    with pytest.raises(InvalidToken):
        signer.verify(token)
    assert len(decoded) == 2  # checked again, and refused by PyJWT
