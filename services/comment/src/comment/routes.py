"""The comment service's internal API; only the gateway and other services call it, with an internal token."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, Field

from comm.answers import JSONAnswer
from comm.appstate import app_state
from comm.callers import SignedIn, is_moderator
from comm.db import ReadSession, Session
from comm.http.clients import BlogServiceClient
from comm.querystring import query_model
from comm.reads import QueryRead, read_with_query, viewer_of
from comm.tokens import CallerIdentity
from comment import service
from comment.errors import NotModerator
from comment.schemas import CommentIn, CommentOut, CommentPage, RejectIn

router = APIRouter(tags=["comments"])

MAX_NUMBER = 2**63 - 1  # a bigint: anything larger is a 422 here, not an overflow in the database
MAX_OFFSET = 2**31 - 1


async def _moderator(identity: SignedIn) -> uuid.UUID:
    """The moderator's user id; 401 without a user, 403 without the moderator or admin role."""
    if identity.user_id is None or not is_moderator(identity):
        raise NotModerator()
    return identity.user_id


Blog = Annotated[BlogServiceClient, Depends(app_state("blog", BlogServiceClient))]
ModeratorId = Annotated[uuid.UUID, Depends(_moderator)]


class PageQuery(BaseModel):
    """A list's query string: which page (one model: comm.querystring)."""

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


Paging = Annotated[PageQuery, Depends(query_model(PageQuery))]
PageReader = Annotated[QueryRead[uuid.UUID | None, PageQuery], Depends(read_with_query(viewer_of, PageQuery))]
Number = Annotated[int, Path(ge=1, le=MAX_NUMBER)]


@router.post("/posts/{post_id}/comments", status_code=status.HTTP_201_CREATED)
async def create_comment(
    post_id: uuid.UUID, data: CommentIn, session: Session, identity: CallerIdentity, blog: Blog
) -> CommentOut:
    """Comment on a public post: for the identity's user, or anonymously with `author_name` (then pending)."""
    return await service.create_comment(session, blog=blog, identity=identity, post_id=post_id, data=data)


@router.get("/posts/{post_id}/comments", response_model=CommentPage)
async def list_comments(post_id: uuid.UUID, read: PageReader) -> JSONAnswer:
    """A post's approved comments, newest first, with their total (the same for every viewer)."""
    page = read.query
    return JSONAnswer(await service.list_comments(read.db, post_id=post_id, limit=page.limit, offset=page.offset))


@router.delete("/posts/{post_id}/comments/{number}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(post_id: uuid.UUID, number: Number, session: Session, identity: SignedIn) -> None:
    """The author or a moderator deletes a comment of this post."""
    await service.delete_comment(session, post_id=post_id, number=number, identity=identity)


@router.get("/comments/{comment_id}")
async def get_comment(comment_id: uuid.UUID, session: ReadSession, identity: CallerIdentity) -> CommentOut:
    """One comment by its UUID (the seed's `CommentServiceClient.get_comment`)."""
    return await service.get_comment(session, comment_id=comment_id, identity=identity)


@router.get("/moderation/comments", response_model=CommentPage)
async def list_pending(session: ReadSession, _: ModeratorId, page: Paging) -> JSONAnswer:
    """Pending comments of every post, oldest first (moderators only)."""
    return JSONAnswer(await service.list_pending(session, limit=page.limit, offset=page.offset))


@router.post("/moderation/comments/{number}/approve")
async def approve(number: Number, session: Session, moderator_id: ModeratorId) -> CommentOut:
    """Make a comment visible; approving an approved comment changes nothing."""
    return await service.moderate(session, number=number, moderator_id=moderator_id, status="approved")


@router.post("/moderation/comments/{number}/reject")
async def reject(number: Number, data: RejectIn, session: Session, moderator_id: ModeratorId) -> CommentOut:
    """Hide a comment, with the reason; rejecting a rejected comment changes nothing."""
    return await service.moderate(
        session, number=number, moderator_id=moderator_id, status="rejected", reason=data.reason
    )
