"""The comment database: comments, the tombstones of deleted posts, and the authors' public profiles (read model)."""

import uuid
from datetime import datetime
from typing import get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Identity,
    Index,
    String,
    Text,
    func,
    literal,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comm.authors import add_authors_table
from comm.db import service_metadata
from comm.events.models import CommentStatus
from comm.events.tables import add_event_tables

STATUSES = get_args(CommentStatus)


class Base(DeclarativeBase):
    metadata = service_metadata()


class Comment(Base):
    """A comment on a post: by a user (`author_id`) or anonymous (`author_name`, held pending until approved).

    `id` names the comment in events; `number` is the integer the RealWorld API uses in its URLs.
    """

    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        CheckConstraint("author_id IS NOT NULL OR author_name IS NOT NULL", name="author"),
        # A post's visible comments, newest first.
        Index(
            "ix_comments_post_approved", "post_id", "created_at", "number", postgresql_where=text("status = 'approved'")
        ),
        # The moderation queue, oldest first.
        Index("ix_comments_pending", "created_at", "number", postgresql_where=text("status = 'pending'")),
        Index("ix_comments_post_id", "post_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    number: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    post_id: Mapped[uuid.UUID]
    author_id: Mapped[uuid.UUID | None]
    author_name: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    moderation_reason: Mapped[str | None] = mapped_column(String(500))
    moderator_id: Mapped[uuid.UUID | None]
    moderated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeletedPost(Base):
    """A post blog deleted: a create that loses the race with the cascade sees this and answers 404."""

    __tablename__ = "deleted_posts"

    post_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


EVENT_TABLES = add_event_tables(Base.metadata)
# Authors' public profiles, kept from `profile.updated` (comm.authors); comment lists join them.
AUTHORS = add_authors_table(Base.metadata)


def name_key(name: ColumnElement[str] | str) -> ColumnElement[str]:
    """How two names compare when an anonymous comment must not pass for a registered user: Unicode-normalised
    (NFKC, so full-width or ligature look-alikes fold to their plain letters) and lower-cased by ICU's root locale
    (`und-x-icu`: the database's own collation may be C, whose lower() folds ASCII only)."""
    value = name if isinstance(name, ColumnElement) else literal(name, String)
    return func.lower(func.normalize(value, literal_column("NFKC")).collate("und-x-icu"))


# Registered names by their key: the check of every anonymous comment is one index lookup.
Index("ix_authors_name_key", name_key(AUTHORS.c.username))
