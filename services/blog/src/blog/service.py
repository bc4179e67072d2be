"""The post use cases that write: one transaction each, the outbox row in the same transaction as the write.

Events: `post.published` when a post becomes public (created published, or a draft published), `post.updated` when
a public post changes, `post.deleted` on every delete (drafts too: a comment may have raced the delete).
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from blog.errors import NoFreeSlug, NotAuthor, PostNotFound, UnknownCategory
from blog.models import Category, Favorite, Post
from blog.queries import to_out
from blog.schemas import PostIn, PostOut, PostPatch
from blog.slugs import slugify, with_suffix
from comm.db import violated_constraint
from comm.events.models import PostDeleted, PostPublished, PostUpdated
from comm.events.outbox import add_event

SLUG_ATTEMPTS = 5  # the plain slug, then random suffixes: a sixth collision in a row does not happen


async def create_post(session: AsyncSession, *, author_id: uuid.UUID, data: PostIn) -> PostOut:
    """A new post under a free slug; `post.published` in the same transaction unless it is a draft."""
    async with session.begin():
        category = await _category(session, data.category)
        values = {
            "title": data.title,
            "description": data.description,
            "body": data.body,
            "tag_list": data.tag_list,
            "author_id": author_id,
            "category_id": category.id if category else None,
            "published_at": None if data.draft else func.now(),
        }

        async def write(slug: str) -> Post:
            return await _returning(session, insert(Post).values(id=uuid.uuid4(), slug=slug, **values))

        post = await _under_free_slug(session, title=data.title, write=write)
        if post.published_at is not None:
            await add_event(session, _published(post))
    return to_out(post, category, False)


async def update_post(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID, data: PostPatch) -> PostOut:
    """The author's changes; a new title gives a new slug; `post.updated` if the post is public."""
    async with session.begin():
        post = await _own_post(session, post_id=post_id, user_id=user_id)
        changes = _changes(post, data)
        category = await _category_by_id(session, post.category_id)
        if "category" in data.model_fields_set:
            category = await _category(session, data.category)
            if (category.id if category else None) != post.category_id:
                changes["category_id"] = category.id if category else None
        if changes:
            write = partial(_update, session, post.id, {**changes, "updated_at": func.now()})
            if slugify(changes.get("title", post.title)) != slugify(post.title):
                post = await _under_free_slug(session, title=changes["title"], write=write)
            else:
                post = await write(post.slug)
            if post.published_at is not None:
                event = PostUpdated(
                    post_id=post.id, author_id=post.author_id, title=post.title, timestamp=post.updated_at
                )
                await add_event(session, event)
        favorited = await _favorited(session, post_id=post.id, user_id=user_id)
    return to_out(post, category, favorited)


async def publish_post(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID) -> PostOut:
    """Make the author's draft public (`post.published`); publishing a public post changes nothing."""
    async with session.begin():
        post = await _own_post(session, post_id=post_id, user_id=user_id)
        if post.published_at is None:
            post = await _update(session, post.id, {"published_at": func.now()}, post.slug)
            await add_event(session, _published(post))
        category = await _category_by_id(session, post.category_id)
        favorited = await _favorited(session, post_id=post.id, user_id=user_id)
    return to_out(post, category, favorited)


async def delete_post(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Delete the author's post and its favorites; `post.deleted` so that its comments go too."""
    async with session.begin():
        post = await _own_post(session, post_id=post_id, user_id=user_id)
        await session.execute(delete(Post).where(Post.id == post.id))  # favorites follow: ON DELETE CASCADE
        await add_event(session, PostDeleted(post_id=post.id, author_id=post.author_id, timestamp=datetime.now(UTC)))


async def set_favorite(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID, favorite: bool) -> PostOut:
    """Favorite or unfavorite (both idempotent) and recount, under the post's row lock: no lost update."""
    async with session.begin():
        post = await _locked_visible_post(session, post_id=post_id, user_id=user_id)
        if favorite:
            await session.execute(pg_insert(Favorite).values(post_id=post.id, user_id=user_id).on_conflict_do_nothing())
        else:
            await session.execute(delete(Favorite).where(Favorite.post_id == post.id, Favorite.user_id == user_id))
        count = select(func.count()).where(Favorite.post_id == post.id).scalar_subquery()
        post = await _update(session, post.id, {"favorites_count": count}, post.slug)
        category = await _category_by_id(session, post.category_id)
    return to_out(post, category, favorite)


def _changes(post: Post, data: PostPatch) -> dict[str, Any]:
    """The given fields that differ from what is stored (category aside)."""
    given = {
        "title": data.title,
        "description": data.description,
        "body": data.body,
        "tag_list": data.tag_list,
    }
    return {field: value for field, value in given.items() if value is not None and value != getattr(post, field)}


async def _own_post(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID) -> Post:
    """The post, locked for the rest of the transaction, if `user_id` wrote it; 404 if unseen, 403 if not theirs."""
    post = await _locked_visible_post(session, post_id=post_id, user_id=user_id)
    if post.author_id != user_id:
        raise NotAuthor()
    return post


async def _locked_visible_post(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID) -> Post:
    post = await session.scalar(select(Post).where(Post.id == post_id).with_for_update())
    if post is None or (post.published_at is None and post.author_id != user_id):
        raise PostNotFound()
    return post


async def _under_free_slug(session: AsyncSession, *, title: str, write: Callable[[str], Awaitable[Post]]) -> Post:
    """Run `write(slug)` with the title's slug, or a suffixed one while the unique constraint refuses it.

    Each try is a savepoint, so a refusal (a concurrent create of the same title, too) costs only that try.
    """
    base = slugify(title)
    for attempt in range(SLUG_ATTEMPTS):
        slug = base if attempt == 0 else with_suffix(base)
        try:
            async with session.begin_nested():
                return await write(slug)
        except IntegrityError as exc:
            if violated_constraint(exc) != "uq_posts_slug":
                raise
    raise NoFreeSlug()


async def _update(session: AsyncSession, post_id: uuid.UUID, values: dict[str, Any], slug: str) -> Post:
    """Update the post with `values` and `slug` (the last, so `partial(_update, ...)` is a `_under_free_slug` write)."""
    return await _returning(session, update(Post).where(Post.id == post_id).values(slug=slug, **values))


async def _returning(session: AsyncSession, statement: Any) -> Post:
    """Execute an INSERT or UPDATE of one post and return the row as stored (the session's copy refreshed)."""
    post: Post = (await session.scalars(statement.returning(Post), execution_options={"populate_existing": True})).one()
    return post


async def _category(session: AsyncSession, slug: str | None) -> Category | None:
    """The category a post is put in by slug; 422 for an unknown one."""
    if slug is None:
        return None
    category = await session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise UnknownCategory(slug)
    return category


async def _category_by_id(session: AsyncSession, category_id: uuid.UUID | None) -> Category | None:
    return None if category_id is None else await session.get(Category, category_id)


async def _favorited(session: AsyncSession, *, post_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return await session.get(Favorite, (post_id, user_id)) is not None


def _published(post: Post) -> PostPublished:
    assert post.published_at is not None
    return PostPublished(post_id=post.id, author_id=post.author_id, title=post.title, timestamp=post.published_at)
