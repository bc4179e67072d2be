"""Categories: anyone lists them, only admins create and rename them."""

import uuid
from typing import Any

import httpx


async def test_admin_creates_and_renames_and_everyone_lists(client: httpx.AsyncClient, new_author: Any) -> None:
    admin, author = new_author(frozenset({"admin"})), new_author()
    name = f"Travel {uuid.uuid4().hex[:6]}"
    created = await client.post("/categories", json={"name": name}, headers=admin.headers)
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    assert created.json() == {"slug": name.lower().replace(" ", "-"), "name": name}
    post = await author.post(category=slug)
    assert post["category"] == {"slug": slug, "name": name}
    renamed = await client.patch(f"/categories/{slug}", json={"name": name + " & more"}, headers=admin.headers)
    assert renamed.json() == {"slug": slug, "name": name + " & more"}
    reslugged = await client.patch(f"/categories/{slug}", json={"slug": slug + "-x"}, headers=admin.headers)
    assert reslugged.json()["slug"] == slug + "-x"
    assert (await client.get(f"/posts/{post['id']}")).json()["category"] == {
        "slug": slug + "-x",
        "name": name + " & more",
    }
    listed = (await client.get("/categories")).json()["categories"]
    assert {"slug": slug + "-x", "name": name + " & more"} in listed
    assert [c["name"] for c in listed] == sorted(c["name"] for c in listed)


async def test_non_admins_get_403_and_anonymous_401(client: httpx.AsyncClient, new_author: Any) -> None:
    admin, user, moderator = new_author(frozenset({"admin"})), new_author(), new_author(frozenset({"moderator"}))
    slug = f"c-{uuid.uuid4().hex[:6]}"
    assert (await client.post("/categories", json={"name": slug}, headers=admin.headers)).status_code == 201
    for headers in (user.headers, moderator.headers):
        created = await client.post("/categories", json={"name": "Nope"}, headers=headers)
        renamed = await client.patch(f"/categories/{slug}", json={"name": "Nope"}, headers=headers)
        assert created.status_code == renamed.status_code == 403
        assert created.json() == {"errors": {"body": ["only an admin may manage categories"]}}
    assert (await client.post("/categories", json={"name": "Nope"})).status_code == 401
    names = [c["name"] for c in (await client.get("/categories")).json()["categories"]]
    assert "Nope" not in names


async def test_taken_names_unknown_categories_and_bad_slugs_are_4xx(client: httpx.AsyncClient, new_author: Any) -> None:
    admin = new_author(frozenset({"admin"}))
    name = f"Food {uuid.uuid4().hex[:6]}"
    await client.post("/categories", json={"name": name}, headers=admin.headers)
    taken = await client.post("/categories", json={"name": name}, headers=admin.headers)
    assert taken.status_code == 422
    assert taken.json() == {"errors": {"name": ["has already been taken"], "slug": ["has already been taken"]}}
    unknown = await client.patch("/categories/no-such-category", json={"name": "x"}, headers=admin.headers)
    assert unknown.status_code == 404
    bad_slug = await client.post("/categories", json={"name": "Ok", "slug": "Not A Slug"}, headers=admin.headers)
    assert bad_slug.status_code == 422
    underivable = await client.post("/categories", json={"name": "日本"}, headers=admin.headers)
    assert underivable.status_code == 422
    assert "slug" in underivable.json()["errors"]
    explicit = await client.post(
        "/categories", json={"name": f"日本 {name}", "slug": f"japan-{uuid.uuid4().hex[:6]}"}, headers=admin.headers
    )
    assert explicit.status_code == 201
    no_such = await client.post(
        "/posts",
        json={"title": "t", "description": "d", "body": "b", "category": "no-such-category"},
        headers=admin.headers,
    )
    assert no_such.status_code == 422
    assert no_such.json() == {"errors": {"category": ["no category 'no-such-category'"]}}
