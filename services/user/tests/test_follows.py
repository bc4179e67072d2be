"""Follow and unfollow by username, `following` in every look-up, and the followed ids for the feed."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Headers = Callable[..., dict[str, str]]
NewProfile = Callable[..., Awaitable[dict[str, Any]]]


async def test_follow_and_unfollow_are_idempotent_and_show_in_lookups(
    client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers
) -> None:
    me, celeb, other = [await new_profile() for _ in range(3)]
    mine = headers_for(uuid.UUID(me["user_id"]))
    path = f"/profiles/by-username/{celeb['username']}/follow"
    # The RealWorld suite sends a stray body with follow; it is ignored.
    first = await client.post(path, json={"user": {"email": "x@mail.com"}}, headers=mine)
    again = await client.post(path, headers=mine)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json() == {**celeb, "following": True}

    batch = await client.get("/profiles", params={"ids": f"{celeb['user_id']},{other['user_id']}"}, headers=mine)
    following = {p["user_id"]: p["following"] for p in batch.json()["profiles"]}
    assert following == {celeb["user_id"]: True, other["user_id"]: False}
    by_name = await client.get(f"/profiles/by-username/{celeb['username']}", headers=mine)
    by_id = await client.get(f"/profiles/{celeb['user_id']}", headers=mine)
    assert by_name.json()["following"] is by_id.json()["following"] is True
    anonymous = await client.get(f"/profiles/{celeb['user_id']}")
    assert anonymous.json()["following"] is False
    someone_else = await client.get(f"/profiles/{celeb['user_id']}", headers=headers_for(uuid.UUID(other["user_id"])))
    assert someone_else.json()["following"] is False

    unfollowed = await client.delete(path, headers=mine)
    unfollowed_again = await client.delete(path, headers=mine)
    assert unfollowed.status_code == unfollowed_again.status_code == 200
    assert unfollowed.json() == unfollowed_again.json() == {**celeb, "following": False}


async def test_followed_ids_are_all_returned_for_the_feed(
    client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers
) -> None:
    me = await new_profile()
    mine = headers_for(uuid.UUID(me["user_id"]))
    assert (await client.get("/profiles/me/following", headers=mine)).json() == {"user_ids": []}
    followed = [await new_profile() for _ in range(5)]
    for profile in followed:
        await client.post(f"/profiles/by-username/{profile['username']}/follow", headers=mine)
    await client.delete(f"/profiles/by-username/{followed[0]['username']}/follow", headers=mine)
    ids = (await client.get("/profiles/me/following", headers=mine)).json()["user_ids"]
    assert sorted(ids) == sorted(p["user_id"] for p in followed[1:])
    assert (await client.get("/profiles/me/following")).status_code == 401


async def test_following_yourself_is_403_and_unknown_users_404(
    client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers
) -> None:
    me = await new_profile()
    mine = headers_for(uuid.UUID(me["user_id"]))
    yourself = await client.post(f"/profiles/by-username/{me['username']}/follow", headers=mine)
    assert yourself.status_code == 403
    assert yourself.json() == {"errors": {"body": ["you cannot follow yourself"]}}
    for method in ("POST", "DELETE"):
        unknown = await client.request(method, "/profiles/by-username/no_such_user_here/follow", headers=mine)
        assert unknown.status_code == 404
    anonymous = await client.post(f"/profiles/by-username/{me['username']}/follow")
    assert anonymous.status_code == 401


async def test_a_follower_without_a_profile_yet_can_follow(
    client: httpx.AsyncClient, new_profile: NewProfile, headers_for: Headers
) -> None:
    """The follower's own profile may still be on its way (its user.created not yet applied)."""
    celeb = await new_profile()
    newcomer = uuid.uuid4()
    response = await client.post(f"/profiles/by-username/{celeb['username']}/follow", headers=headers_for(newcomer))
    assert response.status_code == 200
    assert response.json()["following"] is True
