"""Comment counts: per-comment state kept from the comment events, counts derived from it.

Every event upserts the comment's row, so the final state does not depend on delivery order or repeats:
the status is that of the newest event (timestamp, then moderated over created, then the status name), and a
deletion sticks whenever it arrives. The count is a COUNT over a partial index holding exactly the counted
comments (approved, not deleted), so it cannot drift from the state; a maintained counter column would save
that index scan but must be recomputed from the same rows in every transaction, for no gain at these sizes.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import IntEnum

from sqlalchemy import ColumnElement, ScalarSelect, and_, func, literal_column, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from user.models import CommentState


class StatusEvent(IntEnum):
    """The events that set a comment's status, ranked (stored as `status_rank`): on equal timestamps a moderation
    wins over the creation."""

    CREATED = 0
    MODERATED = 1


async def apply_status(
    session: AsyncSession,
    *,
    comment_id: uuid.UUID,
    author_id: uuid.UUID | None,
    status: str,
    at: datetime,
    kind: StatusEvent,
) -> bool:
    """Record a status from `comment.created` or `comment.moderated` unless a newer one is already there (helper).

    True if it was recorded (the author's count may have changed).
    """
    statement = insert(CommentState).values(
        comment_id=comment_id, author_id=author_id, status=status, status_at=at, status_rank=kind
    )
    new = statement.excluded
    recorded = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CommentState.comment_id],
            set_={
                "author_id": func.coalesce(CommentState.author_id, new.author_id),
                "status": new.status,
                "status_at": new.status_at,
                "status_rank": new.status_rank,
                "updated_at": func.now(),
            },
            where=or_(
                CommentState.status_at.is_(None),
                tuple_(new.status_at, new.status_rank, new.status)
                > tuple_(CommentState.status_at, CommentState.status_rank, CommentState.status),
            ),
        ).returning(CommentState.comment_id)
    )
    return recorded.first() is not None


async def apply_deleted(session: AsyncSession, *, comment_id: uuid.UUID, author_id: uuid.UUID | None) -> bool:
    """Mark a comment deleted, even before its creation arrives (helper); True unless it already was."""
    statement = insert(CommentState).values(comment_id=comment_id, author_id=author_id, deleted=True)
    recorded = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CommentState.comment_id],
            set_={
                "author_id": func.coalesce(CommentState.author_id, statement.excluded.author_id),
                "deleted": True,
                "updated_at": func.now(),
            },
            where=~CommentState.deleted,
        ).returning(CommentState.comment_id)
    )
    return recorded.first() is not None


def counted() -> ColumnElement[bool]:
    """The comments that count: approved and not deleted.

    Spelled as the partial index's predicate (the status a constant, not a bind parameter) so the planner uses it.
    """
    return and_(CommentState.status == literal_column("'approved'"), ~CommentState.deleted)


def comment_count(author_id: InstrumentedAttribute[uuid.UUID]) -> ScalarSelect[int]:
    """The author's count as a correlated subquery, for a query that lists profiles."""
    return select(func.count()).where(CommentState.author_id == author_id, counted()).scalar_subquery()


async def count_comments(session: AsyncSession, *, author_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Approved, not deleted comments per author (absent: none), in one query for any number of authors."""
    if not author_ids:
        return {}
    query = (
        select(CommentState.author_id, func.count())
        .where(CommentState.author_id.in_(author_ids), counted())
        .group_by(CommentState.author_id)
    )
    rows = await session.execute(query)
    return {author_id: count for author_id, count in rows if author_id is not None}
