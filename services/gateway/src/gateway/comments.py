"""Comments and their moderation: comments from the comment service with their authors' public profiles embedded,
the reader's part (and any author not embedded yet) from the user service (gateway.authors).

RealWorld lists a post's comments without paging, so the gateway returns all of them: it reads the comment
service's pages (`COMMENTS_PAGE` each, the most it serves), the first alone and the rest together once the first
has told the total.
An anonymous comment's author is shown as a profile named after its display name, with nothing else, and
`guest: true`; the comment service refuses a display name that is a registered user's (case- and
Unicode-normalised), so a guest cannot read as someone with an account.
"""

import asyncio
import uuid
from collections.abc import Iterable

from comm.answers import JSONObject
from comm.errors import UpstreamClientError
from comm.tokens import Identity
from gateway import authors
from gateway.accounts import own_profile, to_profile
from gateway.deps import Upstreams
from gateway.identity import Viewer, identity_of
from gateway.ratelimit import RateLimiter
from gateway.schemas import NewComment
from gateway.upstreams import CommentView, ProfileView

COMMENTS_PAGE = 100


def _author(comment: CommentView, profiles: dict[uuid.UUID, ProfileView]) -> JSONObject:
    """A `CommentAuthor` as written (comm.answers)."""
    profile = profiles.get(comment.author_id) if comment.author_id else None
    if profile is not None:
        return {**to_profile(profile), "guest": False}
    return {
        "username": comment.author_name or "anonymous",
        "bio": None,
        "image": None,
        "following": False,
        "commentCount": 0,
        "guest": comment.author_id is None,
    }


def _comment(comment: CommentView, profiles: dict[uuid.UUID, ProfileView]) -> JSONObject:
    """A `Comment` as written."""
    return {
        "id": comment.number,
        "createdAt": comment.created_at,
        "updatedAt": comment.updated_at,
        "body": comment.body,
        "author": _author(comment, profiles),
        "status": comment.status,
    }


async def _authors(
    upstreams: Upstreams, comments: Iterable[CommentView], viewer: Viewer | None
) -> dict[uuid.UUID, ProfileView]:
    embedded = {c.author_id: c.author for c in comments if c.author_id is not None}
    return await authors.profiles(upstreams, embedded=embedded, viewer=viewer)


async def add_comment(
    upstreams: Upstreams, *, slug: str, viewer: Viewer | None, data: NewComment, limiter: RateLimiter, client: str
) -> JSONObject:
    """A signed-in user's comment is visible at once; an anonymous one waits for a moderator."""
    if viewer is None:
        await limiter.hit(limiter.limits.comment_anonymous, "comment-anonymous", client)
    else:
        await limiter.hit(limiter.limits.comment, "comment", str(viewer.user.id))
    identity = identity_of(viewer)

    async def create() -> CommentView:
        post = await upstreams.blog.by_slug(slug, identity=identity)
        # A draft takes no comments: the comment service says so (403), the rule's one place.
        author_name = None if viewer else data.authorName
        try:
            return await upstreams.comments.create(post.id, body=data.body, author_name=author_name, identity=identity)
        except UpstreamClientError as exc:
            # The comment service names the field as it has it; the client sent `authorName`.
            exc.errors = {("authorName" if key == "author_name" else key): v for key, v in exc.errors.items()}
            raise

    if viewer is None:
        return _comment(await create(), {})
    # The author is the viewer, known before anything is written: their profile is fetched meanwhile.
    created, own = await asyncio.gather(create(), own_profile(upstreams, viewer=viewer))
    return _comment(created, {viewer.user.id: own})


async def list_comments(upstreams: Upstreams, *, slug: str, viewer: Viewer | None) -> list[JSONObject]:
    """Every visible comment of the post, newest first."""
    identity = identity_of(viewer)
    post = await upstreams.blog.by_slug(slug, identity=identity)
    every = await _every_comment(upstreams, post.id, identity=identity)
    profiles = await _authors(upstreams, every, viewer)
    return [_comment(comment, profiles) for comment in every]


async def _every_comment(upstreams: Upstreams, post_id: uuid.UUID, *, identity: Identity) -> list[CommentView]:
    first = await upstreams.comments.of_post(post_id, limit=COMMENTS_PAGE, offset=0, identity=identity)
    if len(first.comments) < COMMENTS_PAGE:
        return first.comments
    rest = await asyncio.gather(
        *(
            upstreams.comments.of_post(post_id, limit=COMMENTS_PAGE, offset=offset, identity=identity)
            for offset in range(COMMENTS_PAGE, first.total, COMMENTS_PAGE)
        )
    )
    # A comment written meanwhile shifts the pages by one: it is listed once, by its id, where it first came.
    every = {comment.id: comment for page in (first, *rest) for comment in page.comments}
    return list(every.values())


async def delete_comment(upstreams: Upstreams, *, slug: str, number: int, viewer: Viewer) -> None:
    post = await upstreams.blog.by_slug(slug, identity=viewer.identity)
    await upstreams.comments.delete(post.id, number, identity=viewer.identity)


async def pending(upstreams: Upstreams, *, viewer: Viewer, limit: int, offset: int) -> JSONObject:
    """The moderation queue, oldest first, with each comment's article slug: a `ModerationQueueResponse`."""
    page = await upstreams.comments.pending(limit=limit, offset=offset, identity=viewer.identity)
    profiles, slugs = await asyncio.gather(
        _authors(upstreams, page.comments, viewer),
        upstreams.blog.slugs({c.post_id for c in page.comments}, identity=viewer.identity),
    )
    comments = [_moderated(comment, profiles, slugs) for comment in page.comments]
    return {"comments": comments, "commentsCount": page.total}


async def moderate(
    upstreams: Upstreams, *, number: int, viewer: Viewer, approve: bool, reason: str | None
) -> JSONObject:
    comment = await upstreams.comments.moderate(number, approve=approve, reason=reason, identity=viewer.identity)
    profiles, slugs = await asyncio.gather(
        _authors(upstreams, [comment], viewer), upstreams.blog.slugs({comment.post_id}, identity=viewer.identity)
    )
    return _moderated(comment, profiles, slugs)


def _moderated(comment: CommentView, profiles: dict[uuid.UUID, ProfileView], slugs: dict[uuid.UUID, str]) -> JSONObject:
    """A `ModeratedComment` as written."""
    moderated = {"articleSlug": slugs.get(comment.post_id), "reason": comment.moderation_reason}
    return {**_comment(comment, profiles), **moderated}
