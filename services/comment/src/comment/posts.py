"""The one thing comment asks blog: is this post there and public? (the seed's `BlogServiceClient.get_post`)."""

import uuid

from comm.errors import UpstreamClientError
from comm.http.clients import BlogServiceClient
from comm.tokens import Identity
from comment.errors import DraftNotCommentable, PostNotFound


async def ensure_public_post(blog: BlogServiceClient, *, post_id: uuid.UUID, identity: Identity) -> None:
    """PostNotFound unless blog shows the caller the post, DraftNotCommentable for their own draft; upstream
    failures (503, 504) pass through.

    The call is made for the caller's identity, so blog shows its author their own draft (and answers 404 for it
    to everyone else). An answer without the `published` field is taken as public.
    """
    try:
        post = await blog.get_post(post_id, identity=Identity(user_id=identity.user_id, roles=identity.roles))
    except UpstreamClientError as exc:
        if exc.upstream_status == 404:
            raise PostNotFound() from exc
        raise
    if post.published is False:
        raise DraftNotCommentable()
