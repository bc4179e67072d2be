"""`/api/articles/{slug}/comments` and the moderation extension."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from comm.answers import JSONAnswer
from gateway import comments
from gateway.deps import ClientAddress, Limiter, Reader, Upstreams
from gateway.identity import CurrentViewer, OptionalViewer
from gateway.schemas import (
    ModeratedComment,
    ModerationQueueResponse,
    MultipleCommentsResponse,
    NewCommentRequest,
    Rejection,
    SingleCommentResponse,
    errors,
)

router = APIRouter(prefix="/api/articles/{slug}/comments", tags=["Comments"])
moderation = APIRouter(prefix="/api/moderation/comments", tags=["Moderation"])

Slug = Annotated[str, Path(max_length=200, pattern=r"^[^\x00]*$")]
CommentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("", response_model=SingleCommentResponse, responses=errors(401, 403, 404, 413, 429))
async def add_comment(
    slug: Slug,
    request: NewCommentRequest,
    viewer: OptionalViewer,
    upstreams: Upstreams,
    limiter: Limiter,
    client: ClientAddress,
) -> JSONAnswer:
    """Comment on an article. Extension: without a token, give `authorName`; the comment waits for a moderator."""
    created = await comments.add_comment(
        upstreams, slug=slug, viewer=viewer, data=request.comment, limiter=limiter, client=client
    )
    return JSONAnswer({"comment": created})


@router.get("", response_model=MultipleCommentsResponse, responses=errors(401, 404))
async def list_comments(slug: Slug, read: Reader) -> JSONAnswer:
    """The article's visible comments, newest first."""
    return JSONAnswer({"comments": await comments.list_comments(read.upstreams, slug=slug, viewer=read.viewer)})


@router.delete(
    "/{id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=errors(401, 403, 404)
)
async def delete_comment(slug: Slug, id: CommentId, viewer: CurrentViewer, upstreams: Upstreams) -> None:  # noqa: A002
    """Delete a comment: its author or a moderator."""
    await comments.delete_comment(upstreams, slug=slug, number=id, viewer=viewer)


@moderation.get("", response_model=ModerationQueueResponse, responses=errors(401, 403))
async def pending(
    viewer: CurrentViewer,
    upstreams: Upstreams,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JSONAnswer:
    """Extension: comments waiting for a moderator, oldest first (moderators only)."""
    return JSONAnswer(await comments.pending(upstreams, viewer=viewer, limit=limit, offset=offset))


@moderation.post("/{id}/approve", response_model=ModeratedComment, responses=errors(401, 403, 404))
async def approve(id: CommentId, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:  # noqa: A002
    """Extension: make a comment visible (moderators only)."""
    return JSONAnswer(await comments.moderate(upstreams, number=id, viewer=viewer, approve=True, reason=None))


@moderation.post("/{id}/reject", response_model=ModeratedComment, responses=errors(401, 403, 404, 413))
async def reject(id: CommentId, body: Rejection, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:  # noqa: A002
    """Extension: hide a comment, with the reason (moderators only)."""
    return JSONAnswer(await comments.moderate(upstreams, number=id, viewer=viewer, approve=False, reason=body.reason))
