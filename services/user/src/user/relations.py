"""What only this service knows of a page's authors once blog or comment embedded their public faces.

Articles and comments carry their authors' public profiles from blog's and comment's copies (user.profile_events),
so a signed-in reader still needs two things from here: whom among those authors they follow, and their own
profile as it stands now when they are one of the authors, so their own rename, bio, image or comment count shows
in their next read even before the copies catch up (read-your-writes).
"""

import uuid
from collections.abc import Sequence

from sqlalchemy import case, exists, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from user.comment_counts import comment_count
from user.models import Follow, Profile
from user.schemas import ProfileOut, RelationsOut


async def relations(session: AsyncSession, *, viewer_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> RelationsOut:
    """The ids among `ids` the viewer follows, and the viewer's own profile if they are among `ids` (one query)."""
    if not ids:
        return RelationsOut(following=[], viewer=None)
    followed = exists().where(Follow.follower_id == viewer_id, Follow.followee_id == Profile.user_id)
    is_viewer = Profile.user_id == viewer_id
    query = select(
        Profile.user_id,
        Profile.username,
        Profile.bio,
        Profile.image,
        followed.label("following"),
        # Counted only on the viewer's own row: CASE evaluates the subquery only where it is taken.
        case((is_viewer, comment_count(Profile.user_id)), else_=literal(0)).label("comment_count"),
    ).where(Profile.user_id.in_(list(ids)), or_(is_viewer, followed))
    following: list[uuid.UUID] = []
    viewer: ProfileOut | None = None
    for row in await session.execute(query):
        if row.user_id == viewer_id:
            viewer = ProfileOut.model_validate(row, from_attributes=True)
        elif row.following:
            following.append(row.user_id)
    return RelationsOut(following=following, viewer=viewer)
