"""Authors' profiles for what the gateway shows, from what blog and comment embed, plus the reader's part.

Blog's posts and comment's lists carry their authors' public faces (username, bio, image, commentCount) from a
read model those services keep from `profile.updated` (comm.authors). So:

- an anonymous reader costs no call to the user service: `following` is false for them anyway;
- a signed-in reader costs one batch call (`POST /profiles/relations`) for whom among the authors they follow,
  which also returns the reader's own profile as it stands now when they are one of the authors, so their own
  rename, bio, image or comment count shows in their next read at once (read-your-writes), before the copies
  catch up;
- no call at all for authors the reader is known to follow as of this request (`followed`: the feed's authors,
  from the following list the feed was read by; a reader never follows themselves, so it holds no own profile);
- an author whose public face is not embedded (the read model lagging, e.g. an article written seconds after
  registration) is fetched from the user service as before, concurrently with the relations call, so nothing is
  ever shown missing or wrong; an author the user service does not know either is left out, as before.
"""

import asyncio
import uuid
from collections.abc import Collection, Mapping

from gateway.deps import Upstreams
from gateway.identity import Viewer, identity_of
from gateway.upstreams import AuthorView, ProfileView, Relations

NO_RELATIONS = Relations(following=[], viewer=None)


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
    fetched, relations = await asyncio.gather(
        upstreams.users.by_ids(missing, identity=identity),  # no call when nothing is missing
        _relations(upstreams, [author_id for author_id in present if author_id not in followed], viewer),
    )
    following = {*relations.following, *followed}
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
    if relations.viewer is not None:
        found[relations.viewer.user_id] = relations.viewer
    return found


async def profile(
    upstreams: Upstreams, *, author_id: uuid.UUID, embedded: AuthorView | None, viewer: Viewer | None
) -> ProfileView:
    """One author's profile as the viewer sees it; an author unknown to the user service fails as its 404."""
    if embedded is None:
        return await upstreams.users.by_id(author_id, identity=identity_of(viewer))
    return (await profiles(upstreams, embedded={author_id: embedded}, viewer=viewer))[author_id]


async def _relations(upstreams: Upstreams, ids: list[uuid.UUID], viewer: Viewer | None) -> Relations:
    if viewer is None or not ids:
        return NO_RELATIONS
    return await upstreams.users.relations(ids, identity=viewer.identity)
