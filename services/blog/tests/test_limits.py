"""Bad input: always a 4xx in the error shape, never a 500, and nothing stored is lost."""

import uuid
from typing import Any

import httpx
import pytest

VALID = {"title": "A title", "description": "about it", "body": "the text"}


def _is_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}
    assert all(isinstance(messages, list) and messages for messages in body["errors"].values())


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1_000_000}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}, {"offset": 10**30}],
)
async def test_bad_paging_is_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    _is_error(await client.get("/posts", params=params), 422)
    _is_error(await client.post("/posts/feed", params=params, json={"author_ids": []}), 422)


async def test_paging_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    for params in ({"limit": 1}, {"limit": 100}, {"offset": 0}, {"offset": 10**12}):
        assert (await client.get("/posts", params=params)).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "nul \x00 byte"}, "title"),
        ({"description": "\x00"}, "description"),
        ({"body": "text with \x00 inside"}, "body"),
        ({"tagList": ["ok", "bad\x00tag"]}, "tagList"),
        ({"title": "x" * 301}, "title"),
        ({"description": "x" * 1001}, "description"),
        ({"body": "x" * 100_001}, "body"),
        ({"tagList": ["x" * 65]}, "tagList"),
        ({"tagList": [f"t{i}" for i in range(21)]}, "tagList"),
        ({"tagList": ["t"] * 10_000}, "tagList"),
        ({"tagList": [""]}, "tagList"),
        ({"tagList": "not-a-list"}, "tagList"),
        ({"title": "   "}, "title"),
        ({"body": " \n "}, "body"),
        ({"title": None}, "title"),
        ({"category": "Not a slug"}, "category"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_bad_post_fields_are_field_keyed_422(
    client: httpx.AsyncClient, new_author: Any, change: dict[str, Any], field: str
) -> None:
    author = new_author()
    created = await client.post("/posts", json={**VALID, **change}, headers=author.headers)
    _is_error(created, 422)
    assert field in created.json()["errors"]
    post = await author.post()
    if field in ("title", "description", "body", "tagList") and change[field] is not None:
        updated = await client.patch(f"/posts/{post['id']}", json={field: change[field]}, headers=author.headers)
        _is_error(updated, 422)
    assert (await client.get(f"/posts/{post['id']}")).json() == post  # nothing stored was changed


async def test_missing_required_fields_are_422(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    missing = await client.post("/posts", json={"title": "only a title"}, headers=author.headers)
    _is_error(missing, 422)
    assert {"description", "body"} <= set(missing.json()["errors"])


async def test_lone_surrogates_are_422_not_500(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    raw = b'{"title": "half \\ud800 a pair", "description": "d", "body": "b"}'
    response = await client.post("/posts", content=raw, headers={**author.headers, "content-type": "application/json"})
    _is_error(response, 422)


async def test_limits_at_the_edge_are_accepted(new_author: Any) -> None:
    author = new_author()
    post = await author.post(
        title="t" * 300, description="d" * 1000, body="本" * 100_000, tagList=[f"{i:064d}" for i in range(20)]
    )
    assert len(post["body"]) == 100_000
    assert len(post["tagList"]) == 20
    assert post["slug"] == "t" * 100


async def test_oversized_and_malformed_bodies_are_4xx(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    too_big = await client.post(
        "/posts",
        content=b'{"body": "' + b"x" * 2_000_000 + b'"}',
        headers={**author.headers, "content-type": "application/json"},
    )
    _is_error(too_big, 413)
    not_json = await client.post(
        "/posts", content=b"{nope", headers={**author.headers, "content-type": "application/json"}
    )
    _is_error(not_json, 422)
    not_an_object = await client.post("/posts", json=["title"], headers=author.headers)
    _is_error(not_an_object, 422)


async def test_bad_query_and_path_values_are_422(client: httpx.AsyncClient, headers_for: Any) -> None:
    _is_error(await client.get("/posts", params={"tag": "a\x00b"}), 422)
    _is_error(await client.get("/posts", params={"category": "a\x00b"}), 422)
    _is_error(await client.get("/posts", params={"author_id": "not-a-uuid"}), 422)
    _is_error(await client.get("/posts", params={"favorited_by": "\x00"}), 422)
    _is_error(await client.get("/posts/not-a-uuid"), 422)
    _is_error(await client.get("/posts/by-slug/a%00b"), 422)
    _is_error(await client.get("/posts/by-slug/" + "x" * 300), 422)
    admin = {"headers": headers_for(uuid.uuid4(), frozenset({"admin"}))}
    _is_error(await client.patch("/categories/a%00b", json={"name": "x"}, **admin), 422)
    _is_error(await client.post("/posts/lookup", json={"ids": [str(uuid.uuid4())] * 101}), 422)


async def test_calls_without_an_internal_token_are_401(blog_url: str) -> None:
    async with httpx.AsyncClient(base_url=blog_url) as bare:
        for response in (await bare.get("/posts"), await bare.get("/tags"), await bare.get("/categories")):
            _is_error(response, 401)
        forged = await bare.get("/posts", headers={"X-Internal-Token": "not.a.token"})
        _is_error(forged, 401)


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "events": "ok"}
