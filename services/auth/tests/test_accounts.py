"""Register, login, update, revoke: the auth use cases over real HTTP and a real database."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from auth.schemas import UserOut
from comm.testing import assert_matches_model

Register = Callable[[], Awaitable[dict[str, Any]]]
Headers = Callable[..., dict[str, str]]


async def test_register_returns_the_user_and_a_token(client: httpx.AsyncClient, register: Register) -> None:
    user = await register()
    assert user["roles"] == []
    assert user["token"].count(".") == 2
    validated = await client.post("/auth/validate", json={"token": user["token"]})
    assert validated.json() == {k: user[k] for k in ("id", "username", "email", "roles")}
    assert_matches_model(validated.json(), UserOut)  # built as plain data (comm.answers): the model is its shape


async def test_duplicate_username_and_email_are_field_keyed_422(client: httpx.AsyncClient, register: Register) -> None:
    user = await register()
    again = await client.post(
        "/auth/register",
        json={"username": user["username"], "email": user["email"].upper(), "password": "password"},
    )
    assert again.status_code == 422
    errors = again.json()["errors"]
    assert errors["username"] == ["has already been taken"]
    assert errors["email"] == ["has already been taken"]


async def test_concurrent_registers_of_one_name_give_one_user_and_422s(client: httpx.AsyncClient) -> None:
    name = f"race_{uuid.uuid4().hex[:8]}"
    body = {"username": name, "email": f"{name}@mail.com", "password": "password"}
    responses = await asyncio.gather(*(client.post("/auth/register", json=body) for _ in range(8)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [422] * 7
    assert all("errors" in response.json() for response in responses if response.status_code == 422)


async def test_login_with_the_right_password_and_refusals_that_look_alike(
    client: httpx.AsyncClient, register: Register
) -> None:
    user = await register()
    ok = await client.post("/auth/login", json={"email": user["email"], "password": "password"})
    assert ok.status_code == 200
    assert ok.json()["id"] == user["id"]
    wrong = await client.post("/auth/login", json={"email": user["email"], "password": "passwordX"})
    unknown = await client.post("/auth/login", json={"email": "nobody@mail.com", "password": "password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"errors": {"body": ["email or password is invalid"]}}


@pytest.mark.parametrize(("password", "status"), [("1234567", 422), ("x" * 129, 422), ("x" * 128, 201)])
async def test_password_length_policy_without_truncation(client: httpx.AsyncClient, password: str, status: int) -> None:
    name = f"pw_{uuid.uuid4().hex[:8]}"
    response = await client.post(
        "/auth/register", json={"username": name, "email": f"{name}@mail.com", "password": password}
    )
    assert response.status_code == status, response.text
    if status == 201:  # a prefix of a long password is not the password
        prefix = await client.post("/auth/login", json={"email": f"{name}@mail.com", "password": password[:72]})
        assert prefix.status_code == 401


async def test_update_keeps_own_email_and_renames(
    client: httpx.AsyncClient, register: Register, headers_for: Headers
) -> None:
    user = await register()
    headers = headers_for(uuid.UUID(user["id"]))
    same = await client.patch("/auth/users/me", json={"email": user["email"]}, headers=headers)
    assert same.status_code == 200, same.text
    renamed = await client.patch("/auth/users/me", json={"username": user["username"] + "x"}, headers=headers)
    assert renamed.json()["username"] == user["username"] + "x"
    taken = await client.patch("/auth/users/me", json={"email": (await register())["email"]}, headers=headers)
    assert taken.status_code == 422
    assert taken.json()["errors"]["email"] == ["has already been taken"]


async def test_password_change_and_logout_everywhere_revoke_earlier_tokens(
    client: httpx.AsyncClient, register: Register, headers_for: Headers
) -> None:
    user = await register()
    headers = headers_for(uuid.UUID(user["id"]))
    changed = await client.patch("/auth/users/me", json={"password": "new-password"}, headers=headers)
    assert (await client.post("/auth/validate", json={"token": user["token"]})).status_code == 401
    fresh = changed.json()["token"]
    assert (await client.post("/auth/validate", json={"token": fresh})).status_code == 200
    assert (await client.post("/auth/users/me/logout-all", headers=headers)).status_code == 204
    assert (await client.post("/auth/validate", json={"token": fresh})).status_code == 401
    login = await client.post("/auth/login", json={"email": user["email"], "password": "new-password"})
    assert (await client.post("/auth/validate", json={"token": login.json()["token"]})).status_code == 200


async def test_calls_without_an_internal_token_are_401(auth_url: str) -> None:
    async with httpx.AsyncClient(base_url=auth_url) as bare:
        response = await bare.post("/auth/validate", json={"token": "x"})
    assert response.status_code == 401
    assert response.json() == {"errors": {"body": ["internal token required"]}}


async def test_bad_input_is_4xx_in_the_error_shape(client: httpx.AsyncClient) -> None:
    too_big = await client.post("/auth/login", content=b'{"email": "' + b"a" * 70_000 + b'"}')
    assert too_big.status_code == 413
    unknown_field = await client.post("/auth/login", json={"email": "a@mail.com", "password": "p", "admin": True})
    assert unknown_field.status_code == 422
    bad_uuid = await client.get("/auth/users/not-a-uuid")
    assert bad_uuid.status_code == 422
    not_json = await client.post("/auth/login", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    for response in (too_big, unknown_field, bad_uuid, not_json):
        assert set(response.json()) == {"errors"}


async def test_jwks_publishes_the_es256_public_key(client: httpx.AsyncClient) -> None:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [(key["kty"], key["crv"], key["alg"]) for key in keys] == [("EC", "P-256", "ES256")]
    assert "d" not in keys[0]


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "events": "ok"}
