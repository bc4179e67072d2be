"""Bad input gets a clear 4xx in the error shape, never a 500, and loses nothing already stored."""

import uuid
from typing import Any

import pytest

from comm.timestamps import format_api_timestamp


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1_000_000}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}, {"offset": 2**70}],
)
async def test_bad_paging_is_422(kit: Any, params: dict[str, Any]) -> None:
    response = await kit.client.get(f"/posts/{uuid.uuid4()}/comments", params=params, headers=kit.anonymous.headers)
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"errors"}
    moderation = await kit.client.get("/moderation/comments", params=params, headers=kit.user("moderator").headers)
    assert moderation.status_code == 422


async def test_bad_bodies_are_4xx_and_lose_nothing(kit: Any) -> None:
    post_id = kit.blog.add()
    user = kit.user()
    kept = await kit.created(post_id, user, body="keep me")
    url = f"/posts/{post_id}/comments"
    cases = {
        "nul byte": (await kit.create(post_id, user, body="a\x00b"), 422),
        "empty": (await kit.create(post_id, user, body=""), 422),
        "blank": (await kit.create(post_id, user, body=" \n\t "), 422),
        "10 001 chars": (await kit.create(post_id, user, body="x" * 10_001), 422),
        "nul in name": (await kit.create(post_id, kit.anonymous, author_name="a\x00"), 422),
        "oversized": (await kit.client.post(url, json={"body": "x" * 70_000}, headers=user.headers), 413),
        "not json": (
            await kit.client.post(url, content=b"{nope", headers={**user.headers, "content-type": "application/json"}),
            422,
        ),
        "unknown field": (
            await kit.client.post(url, json={"body": "hi", "status": "approved"}, headers=user.headers),
            422,
        ),
        "bad post id": (await kit.client.post("/posts/nope/comments", json={"body": "hi"}, headers=user.headers), 422),
        "bad number": (await kit.client.delete(f"{url}/abc", headers=user.headers), 422),
        "huge number": (await kit.client.delete(f"{url}/{2**64}", headers=user.headers), 422),
        "zero number": (await kit.client.delete(f"{url}/0", headers=user.headers), 422),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert set(response.json()) == {"errors"}, name
    long_reason = await kit.client.post(
        f"/moderation/comments/{kept['number']}/reject", json={"reason": "r" * 501}, headers=kit.user("admin").headers
    )
    no_reason = await kit.client.post(
        f"/moderation/comments/{kept['number']}/reject", json={}, headers=kit.user("admin").headers
    )
    assert (long_reason.status_code, no_reason.status_code) == (422, 422)
    assert (await kit.listed(post_id))["comments"] == [kept]


async def test_a_body_of_exactly_10_000_chars_and_unicode_is_kept_as_written(kit: Any) -> None:
    post_id = kit.blog.add()
    body = "  indented\n" + "é" * (10_000 - 11)
    assert len(body) == 10_000
    comment = await kit.created(post_id, kit.user(), body=body)
    assert comment["body"] == body


def test_api_timestamps_always_carry_milliseconds_and_z() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    assert format_api_timestamp(datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) == "2026-11-29T12:00:00.000Z"
    assert format_api_timestamp(datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)) == "2026-11-29T12:00:00.123Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_api_timestamp(datetime(2026, 11, 29, 14, 0, 0, 999, tzinfo=plus_two)) == "2026-11-29T12:00:00.000Z"
