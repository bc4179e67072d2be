"""Authors' profiles for what the gateway shows, from what blog and comment embed, plus the reader's part.

Blog's posts and comment's lists carry their authors' public faces (username, bio, image, commentCount) from a
read model those services keep from `profile.updated` (comm.authors). So:

- an anonymous reader costs no call to the user service: `following` is false for them anyway;
- a signed-in reader costs no call either for whom they follow, kept by the gateway (gateway.follows: fetched on
  their first read, dropped whenever they follow or unfollow, so a follow shows in their next read at once); a
  reader who is one of the authors costs one call for their own profile as it stands now, so their own rename,
  bio, image or comment count shows in their next read at once (read-your-writes), before the copies catch up;
- authors the reader is known to follow as of this request (`followed`: the feed's authors, from the set the feed
  was read by) are not looked up again;
- an author whose public face is not embedded (the read model lagging, e.g. an article written seconds after
  registration) is fetched from the user service, concurrently with the rest, so nothing is
  ever shown missing or wrong; an author the user service does not know either is left out, as before.
"""

import asyncio
import uuid
from collections.abc import Collection, Mapping
from functools import partial

from gateway.deps import Upstreams
from gateway.follows import FollowedIds
from gateway.identity import Viewer, identity_of
from gateway.upstreams import AuthorView, ProfileView


async def profiles(
    upstreams: Upstreams,
    *,
    embedded: Mapping[uuid.UUID, AuthorView | None],
    viewer: Viewer | None,
    known: Mapping[uuid.UUID, ProfileView] | None = None,
    followed: Collection[uuid.UUID] = (),
) -> dict[uuid.UUID, ProfileView]:
    """The profiles of the authors in `embedded` as the viewer sees them; `known` ones (fetched already) as given;
    those in `followed` are followed by the viewer (known already, no need to ask)."""
    known = known or {}
    wanted = [author_id for author_id in embedded if author_id not in known]
    missing = [author_id for author_id in wanted if embedded[author_id] is None]
    present = [author_id for author_id in wanted if embedded[author_id] is not None]
    identity = identity_of(viewer)
    unknown = [author_id for author_id in present if author_id not in followed]
    if missing or _is_author(viewer, present):  # two lookups may call out: at once
        fetched, kept, own = await asyncio.gather(
            upstreams.users.by_ids(missing, identity=identity),  # no call when nothing is missing
            _followed(upstreams, viewer, unknown),
            _own(upstreams, viewer, present),
        )
    else:  # only whom the viewer follows may be fetched: no tasks (the three cost 8 % of a signed-in article read)
        fetched, kept, own = {}, await _followed(upstreams, viewer, unknown), None
    following = {*kept, *followed}
    found = dict(known)
    found.update(fetched)
    for author_id in present:
        author = embedded[author_id]
        assert author is not None
        found[author_id] = ProfileView(
            user_id=author_id,
            username=author.username,
            bio=author.bio,
            image=author.image,
            following=author_id in following,
            commentCount=author.comment_count,
        )
    if own is not None:
        found[own.user_id] = own
    return found


async def profile(
    upstreams: Upstreams, *, author_id: uuid.UUID, embedded: AuthorView | None, viewer: Viewer | None
) -> ProfileView:
    """One author's profile as the viewer sees it; an author unknown to the user service fails as its 404."""
    if embedded is None:
        return await upstreams.users.by_id(author_id, identity=identity_of(viewer))
    return (await profiles(upstreams, embedded={author_id: embedded}, viewer=viewer))[author_id]


async def followed_by(upstreams: Upstreams, viewer: Viewer) -> FollowedIds:
    """Everyone the viewer follows: kept by the gateway, or asked of the user service (gateway.follows)."""
    fetch = partial(upstreams.users.following, identity=viewer.identity)
    return await upstreams.follows.followed_by(viewer.user.id, fetch)


async def _followed(upstreams: Upstreams, viewer: Viewer | None, ids: list[uuid.UUID]) -> FollowedIds:
    if viewer is None or not ids:
        return frozenset()
    return await followed_by(upstreams, viewer)


def _is_author(viewer: Viewer | None, ids: list[uuid.UUID]) -> bool:
    return viewer is not None and viewer.user.id in ids


async def _own(upstreams: Upstreams, viewer: Viewer | None, ids: list[uuid.UUID]) -> ProfileView | None:
    """The viewer's own profile, fresh, when they are one of the authors."""
    if viewer is None or not _is_author(viewer, ids):
        return None
    return await upstreams.users.by_id(viewer.user.id, identity=viewer.identity)
