"""Profile and follow use cases (a write: one transaction; a read: one query), and the identity sync events drive.

Usernames are not unique here (see models.Profile), so a look-up by username takes the row whose name was
assigned last in auth's timeline: first a row no identity event has confirmed yet (made moments ago by the
ensure path at registration), then the newest `identity_at`. A stale holder of the name, whose rename is still
on its way, loses to the user who holds it now.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import IntEnum
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, String, Uuid, any_, bindparam, delete, exists, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from comm.answers import JSONObject
from comm.db import ReadPool, Statement
from user.comment_counts import comment_count
from user.errors import CannotFollowYourself, NotYourProfile, ProfileNotFound
from user.models import Follow, Profile
from user.profile_events import lock_profile, publish_profile
from user.schemas import Lookup, ProfileOut, ProfileUpdateIn


class IdentityEvent(IntEnum):
    """The events that set a profile's identity, ranked (stored with their timestamp): on equal timestamps an update
    wins over a creation."""

    CREATED = 0
    UPDATED = 1


# The reads answer plain data in ProfileOut's shape, written once (comm.answers); the writes answer the model.


async def get_profile(db: ReadPool, *, user_id: uuid.UUID, viewer_id: uuid.UUID | None) -> JSONObject:
    """One profile by user id, as `viewer_id` sees it, in one query (no transaction needed: see comm.db)."""
    return _answer(await PROFILE_BY_ID.fetchrow(db, user_id=user_id, viewer_id=viewer_id))


async def get_profile_by_username(db: ReadPool, *, username: str, viewer_id: uuid.UUID | None) -> JSONObject:
    """One profile by username, as `viewer_id` sees it, in one query."""
    return _answer(await PROFILE_BY_USERNAME.fetchrow(db, username=username, viewer_id=viewer_id))


async def lookup_profiles(db: ReadPool, *, lookup: Lookup, viewer_id: uuid.UUID | None) -> JSONObject:
    """The profiles found by ids and usernames (unknown ones left out), in one query whatever their number."""
    if not lookup.ids and not lookup.usernames:
        return {"profiles": []}
    rows = await PROFILES_LOOKUP.fetch(db, ids=lookup.ids, usernames=lookup.usernames, viewer_id=viewer_id)
    return {"profiles": [_answer(row) for row in rows]}


async def ensure_profile(
    session: AsyncSession, *, actor_id: uuid.UUID, user_id: uuid.UUID, username: str
) -> ProfileOut:
    """Create the profile if it is missing, change nothing if it exists (read-your-writes at registration).

    The profile is normally made by `user.created`; the gateway calls this right after registering so the new user
    can read their profile before that event arrives. The row carries no identity timestamp, so the event, which
    carries auth's authoritative one, overrides it whenever it comes, and a later call here never undoes an event.
    A profile created here is published (`profile.updated`) like one created by the event.
    """
    if actor_id != user_id:
        raise NotYourProfile()
    async with session.begin():
        await lock_profile(session, user_id)
        created = await session.scalar(
            insert(Profile)
            .values(user_id=user_id, username=username)
            .on_conflict_do_nothing(index_elements=["user_id"])
            .returning(Profile.user_id)
        )
        if created is not None:
            await publish_profile(session, user_id)
        return await _one(session, Profile.user_id == user_id, viewer_id=actor_id)


async def update_profile(session: AsyncSession, *, user_id: uuid.UUID, data: ProfileUpdateIn) -> ProfileOut:
    """Change the user's own bio and image (`profile.updated`); fields not sent stay as they are."""
    async with session.begin():
        await lock_profile(session, user_id)
        profile = await session.get(Profile, user_id, with_for_update=True)
        if profile is None:
            raise ProfileNotFound()
        changes = data.model_dump(exclude_unset=True)
        for field, value in changes.items():
            setattr(profile, field, value)
        await session.flush()
        if changes:
            await publish_profile(session, user_id)
        return await _one(session, Profile.user_id == user_id, viewer_id=user_id)


async def follow(session: AsyncSession, *, follower_id: uuid.UUID, username: str) -> ProfileOut:
    """Follow a user by username; following again changes nothing."""
    async with session.begin():
        followee_id = await _holder_of(session, username)
        if followee_id == follower_id:
            raise CannotFollowYourself()
        await session.execute(
            insert(Follow).values(follower_id=follower_id, followee_id=followee_id).on_conflict_do_nothing()
        )
        return await _one(session, Profile.user_id == followee_id, viewer_id=follower_id)


async def unfollow(session: AsyncSession, *, follower_id: uuid.UUID, username: str) -> ProfileOut:
    """Stop following a user by username; unfollowing someone not followed changes nothing."""
    async with session.begin():
        followee_id = await _holder_of(session, username)
        if followee_id == follower_id:
            raise CannotFollowYourself()
        await session.execute(
            delete(Follow).where(Follow.follower_id == follower_id, Follow.followee_id == followee_id)
        )
        return await _one(session, Profile.user_id == followee_id, viewer_id=follower_id)


async def followed_ids(db: ReadPool, *, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Every user id `user_id` follows (for the feed), oldest follow first."""
    return [row[0] for row in await FOLLOWED_IDS.fetch(db, user_id=user_id)]


async def apply_identity(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    username: str,
    at: datetime,
    kind: IdentityEvent,
    version: int | None = None,
) -> None:
    """Upsert the username from an identity event if the event is newer than the one applied last (helper).

    Newer means a higher auth identity `version` when both carry one (auth sets it in the change's transaction,
    so it orders a user's events whatever the replicas' clocks say), else a later (`at`, `kind`).
    Order-tolerant and idempotent: an older or repeated event changes nothing, an `updated` before its `created`
    creates the profile and the late `created` then loses. Bio and image are never touched. An applied event is
    published (`profile.updated`).
    """
    await lock_profile(session, user_id)
    statement = insert(Profile).values(
        user_id=user_id, username=username, identity_at=at, identity_rank=kind, identity_version=version
    )
    new = statement.excluded
    versioned = new.identity_version.is_not(None) & Profile.identity_version.is_not(None)
    applied = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Profile.user_id],
            set_={
                "username": new.username,
                "identity_at": new.identity_at,
                "identity_rank": new.identity_rank,
                "identity_version": new.identity_version,
                "updated_at": func.now(),
            },
            where=or_(
                Profile.identity_at.is_(None),
                versioned & (new.identity_version > Profile.identity_version),
                ~versioned
                & (tuple_(new.identity_at, new.identity_rank) > tuple_(Profile.identity_at, Profile.identity_rank)),
            ),
        ).returning(Profile.user_id)
    )
    if applied.first() is not None:
        await publish_profile(session, user_id)


def _holders(names: ColumnElement[bool]) -> Select[uuid.UUID]:
    """For each username `names` matches, the user id of the one row that holds it now (see the module docstring)."""
    return (
        select(Profile.user_id)
        .where(names)
        .ext(distinct_on(Profile.username))
        .order_by(
            Profile.username,
            Profile.identity_at.desc().nulls_first(),
            Profile.identity_rank.desc(),
            Profile.created_at.desc(),
        )
    )


async def _holder_of(session: AsyncSession, username: str) -> uuid.UUID:
    """The user id that holds `username` now."""
    user_id = await session.scalar(_holders(Profile.username == username))
    if user_id is None:
        raise ProfileNotFound()
    return user_id


# The reads are built once, with bind parameters: building a statement and its cache key on every request cost
# more than running it. A NULL viewer follows no one, so one statement serves signed-in and anonymous readers.
_VIEWER = bindparam("viewer_id", type_=Uuid)
_PROFILE = select(
    Profile.user_id,
    Profile.username,
    Profile.bio,
    Profile.image,
    exists().where(Follow.follower_id == _VIEWER, Follow.followee_id == Profile.user_id).label("following"),
    comment_count(Profile.user_id).label("comment_count"),
)
PROFILE_BY_ID = Statement(_PROFILE.where(Profile.user_id == bindparam("user_id", type_=Uuid)))
PROFILE_BY_USERNAME = Statement(
    _PROFILE.where(Profile.user_id == _holders(Profile.username == bindparam("username")).scalar_subquery())
)
FOLLOWED_IDS = Statement(
    select(Follow.followee_id).where(Follow.follower_id == bindparam("user_id", type_=Uuid)).order_by(Follow.created_at)
)
PROFILES_LOOKUP = Statement(
    _PROFILE.where(
        or_(
            Profile.user_id == any_(bindparam("ids", type_=ARRAY(Uuid))),
            Profile.user_id.in_(_holders(Profile.username == any_(bindparam("usernames", type_=ARRAY(String))))),
        )
    ).order_by(Profile.username)
)


def _found(row: Mapping[str, Any] | asyncpg.Record | None) -> ProfileOut:
    if row is None:
        raise ProfileNotFound()
    return ProfileOut.model_validate(dict(row))


def _answer(row: asyncpg.Record | None) -> JSONObject:
    """A read's row as ProfileOut writes it: the row's values are typed already (the id as text: comm.answers)."""
    if row is None:
        raise ProfileNotFound()
    return {
        "user_id": str(row["user_id"]),
        "username": row["username"],
        "bio": row["bio"],
        "image": row["image"],
        "following": row["following"],
        "commentCount": row["comment_count"],
    }


async def _one(session: AsyncSession, which: ColumnElement[bool], *, viewer_id: uuid.UUID | None) -> ProfileOut:
    """In a write's transaction: the profile its change left, as `viewer_id` sees it."""
    row = (await session.execute(_PROFILE.where(which), {"viewer_id": viewer_id})).first()
    return _found(None if row is None else row._mapping)
