"""What only this service knows of a page's authors once blog or comment embedded their public faces.

Articles and comments carry their authors' public profiles from blog's and comment's copies (user.profile_events),
so a signed-in reader still needs two things from here: whom among those authors they follow, and their own
profile as it stands now when they are one of the authors, so their own rename, bio, image or comment count shows
in their next read even before the copies catch up (read-your-writes).
"""

import uuid
from collections.abc import Sequence

from sqlalchemy import Uuid, any_, bindparam, case, exists, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from comm.db import ReadPool, Statement
from user.comment_counts import comment_count
from user.models import Follow, Profile
from user.schemas import ProfileOut, RelationsOut

_VIEWER = bindparam("viewer_id", type_=Uuid)
_FOLLOWED = exists().where(Follow.follower_id == _VIEWER, Follow.followee_id == Profile.user_id)
_IS_VIEWER = Profile.user_id == _VIEWER
# Built once with bind parameters (see service.PROFILE_BY_ID): the hot read of every signed-in article or page.
RELATIONS = Statement(
    select(
        Profile.user_id,
        Profile.username,
        Profile.bio,
        Profile.image,
        _FOLLOWED.label("following"),
        # Counted only on the viewer's own row: CASE evaluates the subquery only where it is taken.
        case((_IS_VIEWER, comment_count(Profile.user_id)), else_=literal(0)).label("comment_count"),
    ).where(Profile.user_id == any_(bindparam("ids", type_=ARRAY(Uuid))), or_(_IS_VIEWER, _FOLLOWED))
)


async def relations(db: ReadPool, *, viewer_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> RelationsOut:
    """The ids among `ids` the viewer follows, and the viewer's own profile if they are among `ids` (one query)."""
    if not ids:
        return RelationsOut(following=[], viewer=None)
    following: list[uuid.UUID] = []
    viewer: ProfileOut | None = None
    for row in await RELATIONS.fetch(db, viewer_id=viewer_id, ids=list(ids)):
        if row["user_id"] == viewer_id:
            viewer = ProfileOut.model_validate(dict(row))
        elif row["following"]:
            following.append(row["user_id"])
    return RelationsOut(following=following, viewer=viewer)
