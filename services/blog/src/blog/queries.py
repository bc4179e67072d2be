"""Reading posts: who may see what, lists with their filters, the feed, lookups and tags.

Timestamps come formatted by PostgreSQL (comm.timestamps). A page costs one query whatever its size: the posts with
each one's category and author (joined), the viewer's `favorited` (a correlated EXISTS) and the total (a window
count); `favoritesCount` is a column of the post. One post is one query. The author is the read model's copy of
their public profile (comm.authors), null until it has arrived. These are the hot reads: column selects turned
straight into the answer, no ORM entities loaded.
"""

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from blog.models import AUTHORS, Category, Favorite, Post
from blog.schemas import CategoryOut, PostOut, Tags
from comm.answers import JSONObject
from comm.authors import author_answer, author_columns
from comm.db import ReadPool, Statement
from comm.timestamps import api_timestamp_column, format_api_timestamp

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


# The hot reads are statements built once, with bind parameters (a list: once per combination of filters, see
# `_list_statements`): building a statement and its cache key on every request cost more than running it. A NULL
# viewer has no drafts and no favorites, so the same statement serves signed-in and anonymous readers.
_VIEWER = bindparam("viewer", type_=Uuid)
_PUBLISHED = Post.published_at.is_not(None)
_VISIBLE = or_(_PUBLISHED, Post.author_id == _VIEWER)  # published posts, and the viewer's own drafts
_SUMMARY_COLUMNS = (
    Post.id,
    Post.slug,
    Post.title,
    Post.description,
    Post.tag_list,
    Post.author_id,
    api_timestamp_column(Post.published_at),
    Post.favorites_count,
    api_timestamp_column(Post.created_at),
    api_timestamp_column(Post.updated_at),
)


def _select_posts(*, body: bool) -> Select[*tuple[Any, ...]]:
    """Posts' columns with their category, their author and whether the viewer favorited them (no filter yet), in
    the order `_answer` unpacks them (tests/test_lists.py checks the two agree); the body, and any column a statement
    adds, after them.

    Lists leave the body out: up to 100 000 characters each, unread.
    """
    favorited = exists().where(Favorite.post_id == Post.id, Favorite.user_id == _VIEWER)
    return (
        select(
            *_SUMMARY_COLUMNS,
            Category.slug.label("category_slug"),
            Category.name.label("category_name"),
            favorited.label("favorited"),
            *author_columns(AUTHORS),
            *((Post.body,) if body else ()),
        )
        .select_from(Post)
        .outerjoin(Category, Post.category_id == Category.id)
        .outerjoin(AUTHORS, AUTHORS.c.user_id == Post.author_id)
    )


POST_BY_ID = Statement(_select_posts(body=True).where(Post.id == bindparam("post_id", type_=Uuid), _VISIBLE))
POST_BY_SLUG = Statement(_select_posts(body=True).where(Post.slug == bindparam("slug"), _VISIBLE))
POSTS_BY_IDS = Statement(
    _select_posts(body=False).where(Post.id == any_(bindparam("ids", type_=ARRAY(Uuid))), _VISIBLE)
)


async def get_post(
    db: ReadPool, *, viewer: uuid.UUID | None, post_id: uuid.UUID | None = None, slug: str | None = None
) -> JSONObject | None:
    """One post by id or slug, if the viewer may see it, in one query: a `PostOut` as written (comm.answers)."""
    if post_id is not None:
        row = await POST_BY_ID.fetchrow(db, post_id=post_id, viewer=viewer)
    else:
        row = await POST_BY_SLUG.fetchrow(db, slug=slug, viewer=viewer)
    return None if row is None else {**_answer(row), "body": row["body"]}


async def list_posts(db: ReadPool, *, viewer: uuid.UUID | None, where: PostFilter, page: Page) -> JSONObject:
    """A page of the matching posts, newest first, and how many match in all: a `PostList` as written."""
    if where.author_ids is not None and not where.author_ids:
        return {"posts": [], "postsCount": 0}  # an empty feed
    count, listing = _list_statements(_shape(where, viewer))
    params = {
        "viewer": viewer,
        "tags": [where.tag] if where.tag is not None else None,
        "author_id": where.author_id,
        "author_ids": list(where.author_ids) if where.author_ids is not None else None,
        "favorited_by": where.favorited_by,
        "category": where.category,
    }
    rows = await listing.fetch(db, **params, limit=page.limit, offset=page.offset)
    if rows:
        return {"posts": [_answer(row) for row in rows], "postsCount": rows[0]["total"]}
    # Past the last page (or nothing matches): the total alone.
    total = await count.fetchval(db, **params) if page.offset else 0
    return {"posts": [], "postsCount": total or 0}


async def lookup_posts(db: ReadPool, *, viewer: uuid.UUID | None, ids: Sequence[uuid.UUID]) -> JSONObject:
    """The posts among `ids` that exist and the viewer may see, in the order asked (one query): a `PostBatch`."""
    if not ids:
        return {"posts": []}
    rows = await POSTS_BY_IDS.fetch(db, ids=list(ids), viewer=viewer)
    found = {row["id"]: _answer(row) for row in rows}
    return {"posts": [found[post_id] for post_id in dict.fromkeys(ids) if post_id in found]}


async def list_tags(session: AsyncSession) -> Tags:
    """The most used tags of published posts (at most 1000), sorted by name."""
    tags = select(func.unnest(Post.tag_list).label("tag")).where(Post.published_at.is_not(None)).subquery()
    query = select(tags.c.tag).group_by(tags.c.tag).order_by(func.count().desc(), tags.c.tag).limit(TAGS_LIMIT)
    return Tags(tags=sorted(await session.scalars(query)))


@dataclass(frozen=True)
class _Shape:
    """Which criteria a list has: each combination gets its statements built once."""

    tag: bool
    author_id: bool
    author_ids: bool
    favorited_by: bool
    category: bool
    drafts: Drafts  # NONE for an anonymous reader: they have no drafts


def _shape(where: PostFilter, viewer: uuid.UUID | None) -> _Shape:
    return _Shape(
        tag=where.tag is not None,
        author_id=where.author_id is not None,
        author_ids=where.author_ids is not None,
        favorited_by=where.favorited_by is not None,
        category=where.category is not None,
        drafts=where.drafts if viewer is not None or where.drafts is Drafts.ONLY else Drafts.NONE,
    )


@functools.cache
def _list_statements(shape: _Shape) -> tuple[Statement, Statement]:
    """The count and the page of a list of this shape, with bind parameters for every criterion.

    The total rides on the page's rows (a window count over the same snapshot), so a page costs one query; the
    count alone answers a page past the last."""
    conditions = [_drafts(shape.drafts)]
    if shape.tag:
        conditions.append(Post.tag_list.contains(bindparam("tags", type_=ARRAY(String))))
    if shape.author_id:
        conditions.append(Post.author_id == bindparam("author_id", type_=Uuid))
    if shape.author_ids:
        # One array parameter (`= ANY($1)`) instead of one parameter per id: feeds carry thousands of ids.
        conditions.append(Post.author_id == any_(bindparam("author_ids", type_=ARRAY(Uuid))))
    if shape.favorited_by:
        favorer = bindparam("favorited_by", type_=Uuid)
        conditions.append(exists().where(Favorite.post_id == Post.id, Favorite.user_id == favorer))
    if shape.category:
        category = select(Category.id).where(Category.slug == bindparam("category")).scalar_subquery()
        conditions.append(Post.category_id == category)
    count = select(func.count()).select_from(Post).where(*conditions)
    listing = (
        _select_posts(body=False)
        .add_columns(func.count().over().label("total"))
        .where(*conditions)
        .order_by(Post.created_at.desc(), Post.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=BigInteger))
    )
    return Statement(count), Statement(listing)


def _drafts(drafts: Drafts) -> ColumnElement[bool]:
    if drafts is Drafts.NONE:
        return _PUBLISHED
    if drafts is Drafts.ONLY:  # an anonymous reader's are none: a NULL viewer is no post's author
        return and_(Post.published_at.is_(None), Post.author_id == _VIEWER)
    return _VISIBLE


def _answer(row: asyncpg.Record) -> JSONObject:
    """A row of `_select_posts` as `PostSummary` writes it: the API's names, ids as text (comm.answers).

    Taken apart by position: a Record read by name pays a lookup per field (a page's 20 rows built in 27 µs by name,
    15 µs unpacked, in a loop). The columns after the author's (the body, a list's total) are left out."""
    (
        post_id, slug, title, description, tag_list, author_id, published_at, favorites_count, created_at, updated_at,
        category_slug, category_name, favorited, username, bio, image, comment_count, *_,
    ) = row  # fmt: skip
    return {
        "id": str(post_id),
        "slug": slug,
        "title": title,
        "description": description,
        "tagList": list(tag_list),
        "category": {"slug": category_slug, "name": category_name} if category_slug else None,
        "author_id": str(author_id),
        "author": author_answer(username, bio, image, comment_count),
        "published": published_at is not None,
        "publishedAt": published_at,
        "createdAt": created_at,
        "updatedAt": updated_at,
        "favorited": favorited,
        "favoritesCount": favorites_count,
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
        "published_at": None if post.published_at is None else format_api_timestamp(post.published_at),
        "created_at": format_api_timestamp(post.created_at),
        "updated_at": format_api_timestamp(post.updated_at),
        "favorited": favorited,
        "favorites_count": post.favorites_count,
    }
