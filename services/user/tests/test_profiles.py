"""Profiles over real HTTP and a real database: ensure, look-ups, bio and image, bad input."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from comm.testing import assert_matches_model
from user.schemas import ProfileOut, ProfilesOut

Headers = Callable[..., dict[str, str]]
NewProfile = Callable[..., Awaitable[dict[str, Any]]]


async def test_ensure_creates_a_readable_profile_at_once_and_is_idempotent(
    client: httpx.AsyncClient, headers_for: Headers
) -> None:
    user_id = uuid.uuid4()
    mine = headers_for(user_id)
    created = await client.put(f"/profiles/{user_id}", json={"username": "fresh_user.1"}, headers=mine)
    assert created.status_code == 200, created.text
    assert created.json() == {
        "user_id": str(user_id),
        "username": "fresh_user.1",
        "bio": None,
        "image": None,
        "following": False,
        "commentCount": 0,
    }
    again = await client.put(f"/profiles/{user_id}", json={"username": "another_name"}, headers=mine)
    assert again.json()["username"] == "fresh_user.1"  # an existing profile is left as it is
    by_id = await client.get(f"/profiles/{user_id}")
    by_name = await client.get("/profiles/by-username/fresh_user.1")
    assert by_id.json() == by_name.json() == created.json()  # the reads' plain data as the write's model writes it
    assert_matches_model(by_id.json(), ProfileOut)


async def test_ensure_is_only_for_the_user_themselves(client: httpx.AsyncClient, headers_for: Headers) -> None:
    user_id = uuid.uuid4()
    someone_else = await client.put(
        f"/profiles/{user_id}", json={"username": "victim"}, headers=headers_for(uuid.uuid4())
    )
    assert someone_else.status_code == 403
    anonymous = await client.put(f"/profiles/{user_id}", json={"username": "victim"})
    assert anonymous.status_code == 401
    assert (await client.get(f"/profiles/{user_id}")).status_code == 404


async def test_unknown_profiles_are_404(client: httpx.AsyncClient) -> None:
    by_id = await client.get(f"/profiles/{uuid.uuid4()}")
    by_name = await client.get("/profiles/by-username/nobody-at-all")
    assert by_id.status_code == by_name.status_code == 404
    assert by_id.json() == {"errors": {"body": ["profile not found"]}}


async def test_batch_lookup_by_ids_and_usernames(client: httpx.AsyncClient, new_profile: NewProfile) -> None:
    a, b, c = [await new_profile() for _ in range(3)]
    response = await client.get(
        "/profiles", params={"ids": f"{a['user_id']},{uuid.uuid4()}", "usernames": f"{b['username']},ghost_name"}
    )
    assert response.status_code == 200, response.text
    found = {profile["user_id"]: profile for profile in response.json()["profiles"]}
    assert found == {a["user_id"]: a, b["user_id"]: b}
    assert_matches_model(response.json(), ProfilesOut)  # built as plain data (comm.answers): the model is its shape
    repeated = await client.get(
        "/profiles", params=[("ids", a["user_id"]), ("ids", c["user_id"]), ("usernames", a["username"])]
    )
    assert sorted(p["user_id"] for p in repeated.json()["profiles"]) == sorted([a["user_id"], c["user_id"]])
    assert (await client.get("/profiles")).json() == {"profiles": []}


async def test_batch_lookup_limits_and_bad_ids_are_422(client: httpx.AsyncClient) -> None:
    ids = ",".join(str(uuid.uuid4()) for _ in range(60))
    names = ",".join(f"name{i}" for i in range(41))
    too_many = await client.get("/profiles", params={"ids": ids, "usernames": names})
    assert too_many.status_code == 422
    assert too_many.json() == {"errors": {"body": ["at most 100 ids and usernames per call"]}}
    exactly_100 = await client.get("/profiles", params={"ids": ids, "usernames": ",".join(names.split(",")[:40])})
    assert exactly_100.status_code == 200
    bad_id = await client.get("/profiles", params={"ids": f"{uuid.uuid4()},not-a-uuid"})
    assert bad_id.status_code == 422
    assert list(bad_id.json()["errors"]) == ["ids"]
    bad_name = await client.get("/profiles", params={"usernames": "no spaces allowed"})
    assert bad_name.status_code == 422


async def test_update_bio_and_image(client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers) -> None:
    profile = await new_profile()
    mine = headers_for(uuid.UUID(profile["user_id"]))
    updated = await client.patch(
        "/profiles/me", json={"bio": "I write.", "image": "https://img.example.com/a b.png"}, headers=mine
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["bio"], updated.json()["image"]) == ("I write.", "https://img.example.com/a%20b.png")
    bio_only = await client.patch("/profiles/me", json={"bio": "Still writing."}, headers=mine)
    assert bio_only.json()["image"] == "https://img.example.com/a%20b.png"  # fields not sent stay
    cleared = await client.patch("/profiles/me", json={"image": "", "bio": None}, headers=mine)
    assert (cleared.json()["bio"], cleared.json()["image"]) == (None, None)
    assert (await client.get(f"/profiles/{profile['user_id']}")).json() == cleared.json()


@pytest.mark.parametrize(
    "body",
    [
        {"image": "ftp://example.com/a.png"},
        {"image": "javascript:alert(1)"},
        {"image": "/relative/a.png"},
        {"image": "https://example.com/" + "a" * 2048},
        {"image": 42},
        {"bio": "x" * 5001},
        {"bio": "nul \u0000 inside"},
        {"bio": "ok", "username": "renamed"},
    ],
)
async def test_bad_updates_are_422_and_change_nothing(
    client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers, body: dict[str, Any]
) -> None:
    profile = await new_profile()
    response = await client.patch("/profiles/me", json=body, headers=headers_for(uuid.UUID(profile["user_id"])))
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"errors"}
    assert (await client.get(f"/profiles/{profile['user_id']}")).json() == profile


async def test_update_needs_a_user_and_a_profile(client: httpx.AsyncClient, headers_for: Headers) -> None:
    assert (await client.patch("/profiles/me", json={"bio": "x"})).status_code == 401
    missing = await client.patch("/profiles/me", json={"bio": "x"}, headers=headers_for(uuid.uuid4()))
    assert missing.status_code == 404


async def test_bad_input_is_4xx_in_the_error_shape(
    client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers
) -> None:
    profile = await new_profile()
    mine = headers_for(uuid.UUID(profile["user_id"]))
    too_big = await client.patch("/profiles/me", content=b'{"bio": "' + b"a" * 70_000 + b'"}', headers=mine)
    assert too_big.status_code == 413
    unknown_field = await client.put(
        f"/profiles/{profile['user_id']}", json={"username": "x", "admin": True}, headers=mine
    )
    assert unknown_field.status_code == 422
    bad_uuid = await client.get("/profiles/not-a-uuid")
    assert bad_uuid.status_code == 422
    not_json = await client.patch(
        "/profiles/me", content=b"{nope", headers={**mine, "content-type": "application/json"}
    )
    assert not_json.status_code == 422
    long_name = await client.get("/profiles/by-username/" + "n" * 65)
    assert long_name.status_code == 422
    nul_name = await client.post("/profiles/by-username/a%00b/follow", headers=mine)
    assert nul_name.status_code == 422
    bad_username = await client.put(f"/profiles/{profile['user_id']}", json={"username": "a b"}, headers=mine)
    assert bad_username.status_code == 422
    for response in (too_big, unknown_field, bad_uuid, not_json, long_name, nul_name, bad_username):
        assert set(response.json()) == {"errors"}
    assert (await client.get(f"/profiles/{profile['user_id']}")).json() == profile


async def test_calls_without_an_internal_token_are_401(user_url: str) -> None:
    async with httpx.AsyncClient(base_url=user_url) as bare:
        response = await bare.get(f"/profiles/{uuid.uuid4()}")
        forged = await bare.get(f"/profiles/{uuid.uuid4()}", headers={"X-Internal-Token": "not.a.token"})
    assert response.status_code == forged.status_code == 401
    assert response.json() == {"errors": {"body": ["internal token required"]}}


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "events": "ok"}
    metrics = await client.get("/metrics")
    assert 'http_requests_total{method="GET",path="/health",service="user",status="200"}' in metrics.text
