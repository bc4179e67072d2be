"""The comment use cases: one transaction each, the outbox row in the same transaction as the write.

Lists carry each comment's author from the read model (comm.authors), joined in the query that reads the page;
null for an anonymous comment and for an author whose profile has not arrived yet.
"""

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, Integer, Select, Uuid, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from comm.answers import JSONObject
from comm.authors import author_columns, author_of
from comm.callers import is_moderator
from comm.db import ReadPool, Statement
from comm.events.models import CommentCreated, CommentDeleted, CommentModerated, CommentStatus
from comm.events.outbox import add_event
from comm.http.clients import BlogServiceClient
from comm.timestamps import api_timestamp_column, format_api_timestamp
from comm.tokens import Identity
from comment.errors import AuthorNameRequired, AuthorNameTaken, CommentNotFound, NotAuthorOrModerator, PostNotFound
from comment.models import AUTHORS, Comment, DeletedPost, name_key
from comment.posts import ensure_public_post
from comment.schemas import CommentIn, CommentOut


async def create_comment(
    session: AsyncSession, *, blog: BlogServiceClient, identity: Identity, post_id: uuid.UUID, data: CommentIn
) -> CommentOut:
    """A user's comment is approved at once; an anonymous one (no user, a display name) waits for a moderator."""
    if identity.user_id is None and data.author_name is None:
        raise AuthorNameRequired()
    # Blog first and outside the transaction: no connection is held while blog answers, and nothing is
    # stored for a post blog does not know (or while blog is down: its 503 passes through).
    await ensure_public_post(blog, post_id=post_id, identity=identity)
    status: CommentStatus = "pending" if identity.user_id is None else "approved"
    async with session.begin():
        anonymous_name = data.author_name if identity.user_id is None else None
        if anonymous_name is not None and await _a_registered_name(session, anonymous_name):
            raise AuthorNameTaken()
        await _lock_post(session, post_id)
        if await session.get(DeletedPost, post_id) is not None:
            raise PostNotFound()
        comment = Comment(
            id=uuid.uuid4(),
            post_id=post_id,
            author_id=identity.user_id,
            author_name=anonymous_name,
            body=data.body,
            status=status,
        )
        session.add(comment)
        await session.flush()
        await add_event(
            session,
            CommentCreated(
                comment_id=comment.id,
                post_id=post_id,
                author_id=comment.author_id,
                timestamp=comment.created_at,
                status=status,
            ),
        )
    return _stored(comment)


async def _a_registered_name(session: AsyncSession, name: str) -> bool:
    """Whether `name` is a registered user's, by the authors copy (comm.authors) this service keeps of every
    profile. That copy is eventual: a name registered a moment ago may still pass, until its `profile.updated`
    arrives (under a second on a healthy broker); asking the user service on every anonymous comment instead would
    make commenting depend on it, for a window a moderator's approval closes anyway."""
    found = select(AUTHORS.c.user_id).where(name_key(AUTHORS.c.username) == name_key(name)).limit(1)
    return await session.scalar(found) is not None


async def list_comments(db: ReadPool, *, post_id: uuid.UUID, limit: int, offset: int) -> JSONObject:
    """A post's approved comments, newest first, and their total: a `CommentPage` as written (comm.answers)."""
    rows = await APPROVED_PAGE.fetch(db, post_id=post_id, limit=limit, offset=offset)
    if rows:
        return {"comments": [_answer(row) for row in rows], "total": rows[0]["total"]}
    # Past the last page (or no comments): the total alone.
    total = await APPROVED_COUNT.fetchval(db, post_id=post_id) if offset else 0
    return {"comments": [], "total": total or 0}


async def get_comment(session: AsyncSession, *, comment_id: uuid.UUID, identity: Identity) -> CommentOut:
    """An approved comment for anyone; a pending or rejected one only for its author or a moderator."""
    comment = await session.get(Comment, comment_id)
    if comment is None or not _may_see(comment, identity):
        raise CommentNotFound()
    return _stored(comment)


async def delete_comment(session: AsyncSession, *, post_id: uuid.UUID, number: int, identity: Identity) -> None:
    """The author or a moderator deletes a comment of this post; `comment.deleted` follows."""
    async with session.begin():
        comment = await session.scalar(
            select(Comment).where(Comment.number == number, Comment.post_id == post_id).with_for_update()
        )
        if comment is None or not _may_see(comment, identity):
            raise CommentNotFound()
        is_author = identity.user_id is not None and comment.author_id == identity.user_id
        if not is_author and not is_moderator(identity):
            raise NotAuthorOrModerator()
        await session.delete(comment)
        await _comment_deleted(session, comment_id=comment.id, post_id=post_id, author_id=comment.author_id)


async def list_pending(session: AsyncSession, *, limit: int, offset: int) -> JSONObject:
    """The moderation queue: pending comments of every post, oldest first, and their total (a `CommentPage`).

    The total rides on the page's rows (`count(*) OVER ()`), so both come from one statement's snapshot: the read
    session is in autocommit, where two statements would see two snapshots (a BEGIN would not change that under
    READ COMMITTED).
    """
    pending = Comment.status == "pending"
    page = (
        _with_authors(pending)
        .add_columns(func.count().over().label("total"))
        .order_by(Comment.created_at, Comment.number)
        .limit(limit)
        .offset(offset)
    )
    rows = (await session.execute(page)).mappings().all()
    if rows:
        return {"comments": [_answer(row) for row in rows], "total": rows[0]["total"]}
    # Past the last page (or an empty queue): the total alone.
    total = await session.scalar(select(func.count()).select_from(Comment).where(pending)) if offset else 0
    return {"comments": [], "total": total or 0}


def _with_authors(which: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    """The comments matching `which`, as columns, each with its author's public profile (LEFT JOIN: may be null)."""
    return (
        select(*_COLUMNS, *author_columns(AUTHORS))
        .select_from(Comment)
        .outerjoin(AUTHORS, AUTHORS.c.user_id == Comment.author_id)
        .where(which)
    )


# A list's columns: those CommentOut shows, its timestamps formatted by PostgreSQL (comm.timestamps).
_TIMESTAMPS = (Comment.created_at, Comment.updated_at)
_SHOWN = CommentOut.model_fields.keys() - {column.key for column in _TIMESTAMPS}
_COLUMNS = [
    *(column for column in Comment.__table__.c if column.key in _SHOWN),
    *map(api_timestamp_column, _TIMESTAMPS),
]


def _stored(comment: Comment) -> CommentOut:
    """A comment as stored (the answer of a write or of a single read)."""
    fields = {column.key: getattr(comment, column.key) for column in Comment.__table__.c}
    fields.update((column.key, format_api_timestamp(getattr(comment, column.key))) for column in _TIMESTAMPS)
    return CommentOut.model_validate(fields)


def _answer(row: Mapping[str, Any] | asyncpg.Record) -> JSONObject:
    """A row of `_with_authors` (a row's mapping, or a Record) as CommentOut writes it, ids as text (comm.answers);
    extra columns (the page's total) are left out."""
    return {
        "id": str(row["id"]),
        "number": row["number"],
        "post_id": str(row["post_id"]),
        "author_id": _text(row["author_id"]),
        "author_name": row["author_name"],
        "body": row["body"],
        "status": row["status"],
        "moderation_reason": row["moderation_reason"],
        "moderator_id": _text(row["moderator_id"]),
        "author": author_of(row),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


# A post's approved comments, built once with bind parameters; the total rides on every row (a window count over
# the same snapshot), so a page and its total always agree and cost one query.
_APPROVED = (Comment.post_id == bindparam("post_id", type_=Uuid)) & (Comment.status == "approved")
APPROVED_PAGE = Statement(
    _with_authors(_APPROVED)
    .add_columns(func.count().over().label("total"))
    .order_by(Comment.created_at.desc(), Comment.number.desc())
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)
APPROVED_COUNT = Statement(select(func.count()).select_from(Comment).where(_APPROVED))


async def moderate(
    session: AsyncSession, *, number: int, moderator_id: uuid.UUID, status: CommentStatus, reason: str | None = None
) -> CommentOut:
    """Approve or reject; a comment already in that status is left as it is, with no second event."""
    async with session.begin():
        comment = await session.scalar(select(Comment).where(Comment.number == number).with_for_update())
        if comment is None:
            raise CommentNotFound()
        if comment.status != status:
            now = _next_event_time(comment)
            comment.status, comment.moderation_reason = status, reason  # approving clears an old reason
            comment.moderator_id, comment.moderated_at, comment.updated_at = moderator_id, now, now
            await add_event(
                session,
                CommentModerated(
                    comment_id=comment.id,
                    post_id=comment.post_id,
                    author_id=comment.author_id,
                    moderator_id=moderator_id,
                    status=status,
                    reason=reason,
                    timestamp=now,
                ),
            )
    return _stored(comment)


def _next_event_time(comment: Comment) -> datetime:
    """Now, but never before the comment's previous event.

    `comment.created` carries the database's clock (created_at), a moderation this process's; consumers keep the
    newest status by timestamp, so a process clock behind the database's would make an approval look older than
    the creation it follows, and the approval would be ignored. Each event of a comment is later than the last.
    """
    previous = max(comment.created_at, comment.moderated_at or comment.created_at)
    return max(datetime.now(UTC), previous + timedelta(microseconds=1))


async def delete_post_comments(session: AsyncSession, *, post_id: uuid.UUID, deleted_at: datetime) -> int:
    """The cascade of `post.deleted`, inside the consumer's transaction: tombstone, delete, events.

    Creates and this cascade take the same per-post lock (`_lock_post`), so they serialize: a create that got
    the lock first has committed before the DELETE below runs, and that statement's snapshot (read committed,
    taken after the lock) includes its comment; a create that waits sees the tombstone once this commits and
    answers 404. Either way no comment outlives its post, and every deleted one gets its `comment.deleted`.
    """
    await _lock_post(session, post_id)
    await session.execute(insert(DeletedPost).values(post_id=post_id, deleted_at=deleted_at).on_conflict_do_nothing())
    deleted = await session.execute(
        delete(Comment).where(Comment.post_id == post_id).returning(Comment.id, Comment.author_id)
    )
    rows = deleted.all()
    for comment_id, author_id in rows:
        await _comment_deleted(session, comment_id=comment_id, post_id=post_id, author_id=author_id)
    return len(rows)


async def _lock_post(session: AsyncSession, post_id: uuid.UUID) -> None:
    """A transaction-scoped advisory lock per post; a 64-bit key from the UUID (a collision only serializes more)."""
    key = int.from_bytes(post_id.bytes[:8], "big", signed=True)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def _comment_deleted(
    session: AsyncSession, *, comment_id: uuid.UUID, post_id: uuid.UUID, author_id: uuid.UUID | None
) -> None:
    event = CommentDeleted(comment_id=comment_id, post_id=post_id, author_id=author_id, timestamp=datetime.now(UTC))
    await add_event(session, event)


def _may_see(comment: Comment, identity: Identity) -> bool:
    if comment.status == "approved" or is_moderator(identity):
        return True
    return identity.user_id is not None and comment.author_id == identity.user_id
