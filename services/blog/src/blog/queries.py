"""Reading posts: who may see what, lists with their filters, the feed, lookups and tags.

A page costs two queries whatever its size: the total count, and the page itself with each post's category and
author (joined) and the viewer's `favorited` (a correlated EXISTS); `favoritesCount` is a column of the post. One
post is one query. The author is the read model's copy of their public profile (comm.authors), null until it has
arrived. These are the hot reads: column selects turned straight into the answer, no ORM entities loaded.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, any_, bindparam, exists, false, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from blog.models import AUTHORS, Category, Favorite, Post
from blog.schemas import CategoryOut, PostBatch, PostList, PostOut, PostSummary, Tags
from comm.authors import author_columns, author_of

TAGS_LIMIT = 1000


class Drafts(StrEnum):
    """Which drafts a list includes; only ever the viewer's own."""

    NONE = "none"  # published posts only
    MINE = "mine"  # published posts and the viewer's drafts
    ONLY = "only"  # the viewer's drafts only


@dataclass(frozen=True, kw_only=True)
class PostFilter:
    """What a list asks for; every given criterion must hold."""

    tag: str | None = None
    author_id: uuid.UUID | None = None
    favorited_by: uuid.UUID | None = None
    category: str | None = None  # a category slug
    author_ids: Sequence[uuid.UUID] | None = None  # the feed: posts by any of these authors
    drafts: Drafts = Drafts.NONE


@dataclass(frozen=True, kw_only=True)
class Page:
    limit: int = 20
    offset: int = 0


def visible_to(viewer: uuid.UUID | None) -> ColumnElement[bool]:
    """Published posts, and the viewer's own drafts."""
    published = Post.published_at.is_not(None)
    return published if viewer is None else or_(published, Post.author_id == viewer)


_SUMMARY_COLUMNS = (
    Post.id,
    Post.slug,
    Post.title,
    Post.description,
    Post.tag_list,
    Post.author_id,
    Post.published_at,
    Post.favorites_count,
    Post.created_at,
    Post.updated_at,
)


def select_posts(viewer: uuid.UUID | None, *, body: bool) -> Select[*tuple[Any, ...]]:
    """Posts' columns with their category, their author and whether the viewer favorited them (no filter yet).

    Lists leave the body out: up to 100 000 characters each, unread.
    """
    favorited: ColumnElement[bool] = (
        exists().where(Favorite.post_id == Post.id, Favorite.user_id == viewer)
        if viewer is not None
        else literal(False)
    )
    return (
        select(
            *_SUMMARY_COLUMNS,
            *((Post.body,) if body else ()),
            Category.slug.label("category_slug"),
            Category.name.label("category_name"),
            favorited.label("favorited"),
            *author_columns(AUTHORS),
        )
        .select_from(Post)
        .outerjoin(Category, Post.category_id == Category.id)
        .outerjoin(AUTHORS, AUTHORS.c.user_id == Post.author_id)
    )


async def get_post(
    session: AsyncSession, *, viewer: uuid.UUID | None, post_id: uuid.UUID | None = None, slug: str | None = None
) -> PostOut | None:
    """One post by id or slug, if the viewer may see it, in one query."""
    key = Post.id == post_id if post_id is not None else Post.slug == slug
    row = (await session.execute(select_posts(viewer, body=True).where(key, visible_to(viewer)))).first()
    return None if row is None else PostOut(**_row_fields(row), body=row.body)


async def list_posts(session: AsyncSession, *, viewer: uuid.UUID | None, where: PostFilter, page: Page) -> PostList:
    """A page of the matching posts, newest first, and how many match in all."""
    conditions = _conditions(where, viewer)
    if conditions is None:
        return PostList(posts=[], posts_count=0)
    total = await session.scalar(select(func.count()).select_from(Post).where(*conditions))
    rows = await session.execute(
        select_posts(viewer, body=False)
        .where(*conditions)
        .order_by(Post.created_at.desc(), Post.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    return PostList(posts=[PostSummary(**_row_fields(row)) for row in rows], posts_count=total or 0)


async def lookup_posts(session: AsyncSession, *, viewer: uuid.UUID | None, ids: Sequence[uuid.UUID]) -> PostBatch:
    """The posts among `ids` that exist and the viewer may see, in the order asked (one query)."""
    if not ids:
        return PostBatch(posts=[])
    query = select_posts(viewer, body=False).where(Post.id == any_(_uuid_array(ids)), visible_to(viewer))
    found = {post.id: post for post in (PostSummary(**_row_fields(row)) for row in await session.execute(query))}
    return PostBatch(posts=[found[post_id] for post_id in dict.fromkeys(ids) if post_id in found])


async def list_tags(session: AsyncSession) -> Tags:
    """The most used tags of published posts (at most 1000), sorted by name."""
    tags = select(func.unnest(Post.tag_list).label("tag")).where(Post.published_at.is_not(None)).subquery()
    query = select(tags.c.tag).group_by(tags.c.tag).order_by(func.count().desc(), tags.c.tag).limit(TAGS_LIMIT)
    return Tags(tags=sorted(await session.scalars(query)))


def _conditions(where: PostFilter, viewer: uuid.UUID | None) -> list[ColumnElement[bool]] | None:
    """The WHERE clauses of a list; None when nothing can match (an empty feed)."""
    if where.author_ids is not None and not where.author_ids:
        return None
    conditions = [_drafts(where.drafts, viewer)]
    if where.tag is not None:
        conditions.append(Post.tag_list.contains([where.tag]))
    if where.author_id is not None:
        conditions.append(Post.author_id == where.author_id)
    if where.author_ids is not None:
        conditions.append(Post.author_id == any_(_uuid_array(where.author_ids)))
    if where.favorited_by is not None:
        conditions.append(exists().where(Favorite.post_id == Post.id, Favorite.user_id == where.favorited_by))
    if where.category is not None:
        conditions.append(
            Post.category_id == select(Category.id).where(Category.slug == where.category).scalar_subquery()
        )
    return conditions


def _drafts(drafts: Drafts, viewer: uuid.UUID | None) -> ColumnElement[bool]:
    published = Post.published_at.is_not(None)
    if drafts is Drafts.NONE or viewer is None:
        return published if drafts is not Drafts.ONLY else false()
    mine = and_(Post.published_at.is_(None), Post.author_id == viewer)
    return or_(published, mine) if drafts is Drafts.MINE else mine


def _uuid_array(ids: Sequence[uuid.UUID]) -> Any:
    # One array parameter (`= ANY($1)`) instead of one parameter per id: feeds carry thousands of ids.
    return bindparam(None, list(ids), type_=ARRAY(Uuid()))


def _row_fields(row: Row[Any]) -> dict[str, Any]:
    """A row of `select_posts` as the fields of PostSummary."""
    return {
        "id": row.id,
        "slug": row.slug,
        "title": row.title,
        "description": row.description,
        "tag_list": list(row.tag_list),
        "category": CategoryOut(slug=row.category_slug, name=row.category_name) if row.category_slug else None,
        "author_id": row.author_id,
        "author": author_of(row),
        "published": row.published_at is not None,
        "published_at": row.published_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "favorited": row.favorited,
        "favorites_count": row.favorites_count,
    }


def to_out(post: Post, category: Category | None, favorited: bool) -> PostOut:
    """The answer of a write, from the post as stored; without the author, whom the caller already has."""
    return PostOut(**_fields(post, category, favorited), body=post.body)


def _fields(post: Post, category: Category | None, favorited: bool) -> dict[str, Any]:
    return {
        "id": post.id,
        "slug": post.slug,
        "title": post.title,
        "description": post.description,
        "tag_list": list(post.tag_list),
        "category": CategoryOut.model_validate(category) if category is not None else None,
        "author_id": post.author_id,
        "published": post.published_at is not None,
        "published_at": post.published_at,
        "created_at": post.created_at,
        "updated_at": post.updated_at,
        "favorited": favorited,
        "favorites_count": post.favorites_count,
    }
