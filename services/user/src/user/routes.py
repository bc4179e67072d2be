"""The user service's internal API; every call carries an internal token, the viewer or actor is its user."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from comm.answers import JSONAnswer
from comm.callers import CurrentUserId
from comm.db import ReadDatabase, Session
from comm.reads import QueryRead, Reader, read_with_query, viewer_of
from user import service
from user.schemas import (
    USERNAME_PATTERN,
    EnsureIn,
    FollowingOut,
    LookupQuery,
    ProfileOut,
    ProfilesOut,
    ProfileUpdateIn,
)

router = APIRouter(prefix="/profiles", tags=["profiles"])


UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]
LookupReader = Annotated[QueryRead[uuid.UUID | None, LookupQuery], Depends(read_with_query(viewer_of, LookupQuery))]


@router.get("", response_model=ProfilesOut)
async def lookup(read: LookupReader) -> JSONAnswer:
    """Batch: `?ids=<uuid>,<uuid>&usernames=a,b` (at most 100 together); unknown ones are left out."""
    return JSONAnswer(await service.lookup_profiles(read.db, lookup=read.query.lookup(), viewer_id=read.caller))


@router.get("/me/following")
async def following(db: ReadDatabase, user_id: CurrentUserId) -> FollowingOut:
    """Every user id the caller's user follows (for the feed)."""
    return FollowingOut(user_ids=await service.followed_ids(db, user_id=user_id))


@router.patch("/me")
async def update_me(data: ProfileUpdateIn, session: Session, user_id: CurrentUserId) -> ProfileOut:
    return await service.update_profile(session, user_id=user_id, data=data)


@router.get("/by-username/{username}", response_model=ProfileOut)
async def by_username(username: UsernamePath, read: Reader) -> JSONAnswer:
    return JSONAnswer(await service.get_profile_by_username(read.db, username=username, viewer_id=read.caller))


@router.post("/by-username/{username}/follow")
async def follow(username: UsernamePath, session: Session, user_id: CurrentUserId) -> ProfileOut:
    return await service.follow(session, follower_id=user_id, username=username)


@router.delete("/by-username/{username}/follow")
async def unfollow(username: UsernamePath, session: Session, user_id: CurrentUserId) -> ProfileOut:
    return await service.unfollow(session, follower_id=user_id, username=username)


@router.get("/{user_id}", response_model=ProfileOut)
async def by_id(user_id: uuid.UUID, read: Reader) -> JSONAnswer:
    return JSONAnswer(await service.get_profile(read.db, user_id=user_id, viewer_id=read.caller))


@router.put("/{user_id}")
async def ensure(user_id: uuid.UUID, data: EnsureIn, session: Session, actor_id: CurrentUserId) -> ProfileOut:
    """Read-your-writes at registration: create the profile if missing, else change nothing (see service)."""
    return await service.ensure_profile(session, actor_id=actor_id, user_id=user_id, username=data.username)
