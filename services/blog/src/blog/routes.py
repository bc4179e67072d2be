"""The blog service's internal API; only the gateway and other services call it, with an internal token.

Every route needs a valid internal token (`X-Internal-Token`) from the gateway; `GET /posts/{id}` also takes comment's
(is the post there and public for the commenter?). Reads take the token's user, if any, as the viewer (their drafts,
their `favorited`); writes need a user, and category writes the `admin` role.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field

from blog import categories, queries, service
from blog.errors import AdminOnly, PostNotFound
from blog.queries import Drafts, Page, PostFilter
from blog.schemas import (
    CategoryIn,
    CategoryList,
    CategoryOut,
    CategoryPatch,
    CategorySlug,
    FeedIn,
    LookupIn,
    PostBatch,
    PostIn,
    PostList,
    PostOut,
    PostPatch,
    Tags,
    Text,
)
from comm.answers import JSONAnswer
from comm.callers import CurrentUserId, SignedIn, SignInRequired, is_admin
from comm.db import ReadSession, Session
from comm.reads import QueryRead, Read, Reader, read_as, read_with_query, viewer_of
from comm.tokens import GATEWAY, CallerIdentity

router = APIRouter(tags=["posts"])
MAX_LIMIT = 100
MAX_OFFSET = 2**62


async def _admin(identity: SignedIn) -> None:
    if not is_admin(identity):
        raise AdminOnly()


async def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0
) -> Page:
    return Page(limit=limit, offset=offset)


# Comment asks too, whether a post is there and public for the commenter (comment/posts.py).
PostReader = Annotated[Read[uuid.UUID | None], Depends(read_as(viewer_of, callers=(GATEWAY, "comment")))]
Paging = Annotated[Page, Depends(_page)]


@router.post("/posts", status_code=status.HTTP_201_CREATED)
async def create_post(data: PostIn, session: Session, user_id: CurrentUserId) -> PostOut:
    return await service.create_post(session, author_id=user_id, data=data)


class ListQuery(BaseModel):
    """`GET /posts`'s query string: the filters, which drafts, the page (one model: comm.querystring)."""

    tag: Text | None = Field(None, max_length=200)
    author_id: uuid.UUID | None = None
    favorited_by: uuid.UUID | None = None
    category: Text | None = Field(None, max_length=200)
    drafts: Drafts = Drafts.NONE
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


@router.get("/posts", response_model=PostList)
async def list_posts(
    read: Annotated[QueryRead[uuid.UUID | None, ListQuery], Depends(read_with_query(viewer_of, ListQuery))],
) -> JSONAnswer:
    """Posts matching every filter given, newest first; `drafts=mine|only` adds the viewer's drafts."""
    query = read.query
    if query.drafts is not Drafts.NONE and read.caller is None:
        raise SignInRequired()
    where = PostFilter(
        tag=query.tag,
        author_id=query.author_id,
        favorited_by=query.favorited_by,
        category=query.category,
        drafts=query.drafts,
    )
    page = Page(limit=query.limit, offset=query.offset)
    return JSONAnswer(await queries.list_posts(read.db, viewer=read.caller, where=where, page=page))


@router.post("/posts/feed", response_model=PostList)
async def feed(data: FeedIn, read: Reader, page: Paging) -> JSONAnswer:
    """Published posts by any of `author_ids`, newest first."""
    where = PostFilter(author_ids=data.author_ids)
    return JSONAnswer(await queries.list_posts(read.db, viewer=read.caller, where=where, page=page))


@router.post("/posts/lookup", response_model=PostBatch)
async def lookup(data: LookupIn, read: Reader) -> JSONAnswer:
    """Several posts by id at once (those that exist and the viewer may see)."""
    return JSONAnswer(await queries.lookup_posts(read.db, viewer=read.caller, ids=data.ids))


@router.get("/posts/by-slug/{slug}", response_model=PostOut)
async def get_post_by_slug(slug: Annotated[Text, Path(max_length=200)], read: Reader) -> JSONAnswer:
    post = await queries.get_post(read.db, viewer=read.caller, slug=slug)
    if post is None:
        raise PostNotFound()
    return JSONAnswer(post)


@router.get("/posts/{post_id}", response_model=PostOut)
async def get_post(post_id: uuid.UUID, read: PostReader) -> JSONAnswer:
    """One post (`BlogServiceClient.get_post`); someone else's draft is 404, also for a service calling on its own."""
    post = await queries.get_post(read.db, viewer=read.caller, post_id=post_id)
    if post is None:
        raise PostNotFound()
    return JSONAnswer(post)


@router.patch("/posts/{post_id}")
async def update_post(post_id: uuid.UUID, data: PostPatch, session: Session, user_id: CurrentUserId) -> PostOut:
    return await service.update_post(session, post_id=post_id, user_id=user_id, data=data)


@router.delete("/posts/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_post(post_id: uuid.UUID, session: Session, user_id: CurrentUserId) -> None:
    await service.delete_post(session, post_id=post_id, user_id=user_id)


@router.post("/posts/{post_id}/publish")
async def publish_post(post_id: uuid.UUID, session: Session, user_id: CurrentUserId) -> PostOut:
    return await service.publish_post(session, post_id=post_id, user_id=user_id)


@router.put("/posts/{post_id}/favorite")
async def favorite(post_id: uuid.UUID, session: Session, user_id: CurrentUserId) -> PostOut:
    return await service.set_favorite(session, post_id=post_id, user_id=user_id, favorite=True)


@router.delete("/posts/{post_id}/favorite")
async def unfavorite(post_id: uuid.UUID, session: Session, user_id: CurrentUserId) -> PostOut:
    return await service.set_favorite(session, post_id=post_id, user_id=user_id, favorite=False)


@router.get("/tags")
async def tags(session: ReadSession, _: CallerIdentity) -> Tags:
    return await queries.list_tags(session)


@router.get("/categories", tags=["categories"])
async def list_categories(session: ReadSession, _: CallerIdentity) -> CategoryList:
    return await categories.list_categories(session)


@router.post("/categories", status_code=status.HTTP_201_CREATED, tags=["categories"], dependencies=[Depends(_admin)])
async def create_category(data: CategoryIn, session: Session) -> CategoryOut:
    return await categories.create_category(session, data=data)


@router.patch("/categories/{slug}", tags=["categories"], dependencies=[Depends(_admin)])
async def update_category(slug: CategorySlug, data: CategoryPatch, session: Session) -> CategoryOut:
    return await categories.update_category(session, slug=slug, data=data)
