"""The user database: profiles, follows, and the per-comment state comment counts are derived from."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comm.db import service_metadata
from comm.events.tables import add_event_tables


class Base(DeclarativeBase):
    metadata = service_metadata()


class Profile(Base):
    """A user's public face; username comes from auth's events, bio and image from the user."""

    __tablename__ = "profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Not unique: renames of two users can arrive out of order, so one name may sit on two rows for a while.
    username: Mapped[str] = mapped_column(String(64))
    bio: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(String(2048))
    # The timestamp and kind (0 created, 1 updated) of the identity event applied last; NULL until one is,
    # i.e. for a profile made by the read-your-writes ensure path, which every event overrides.
    identity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    identity_rank: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    # The auth identity version of that event (UserCreated/UserUpdated `version`): what orders a user's events.
    # NULL when the event had none (a seed producer's): then `identity_at` orders them.
    identity_version: Mapped[int | None] = mapped_column(BigInteger)
    # Grows by one with every change of the public face, in the same row update; `profile.updated` carries it so
    # that blog's and comment's copies keep the newest (user.profile_events).
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (Index("ix_profiles_username_identity", "username", identity_at.desc().nulls_first()),)


class Follow(Base):
    """`follower_id` follows `followee_id`."""

    __tablename__ = "follows"

    follower_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Only the followee is a foreign key: it was looked up; the follower's own profile may still be on its way.
    followee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("profiles.user_id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("follower_id <> followee_id", name="not_self"),)


class CommentState(Base):
    """What the comment events said about one comment; counts are derived from these rows, never kept as +1s.

    `status` is the one carried by the winning event: the newest `status_at`, then the higher `status_rank`
    (0 created, 1 moderated), then the status name, so any delivery order ends in the same row. NULL status
    means only the deletion has arrived so far. `deleted` never goes back to false.
    """

    __tablename__ = "comment_states"

    comment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    author_id: Mapped[uuid.UUID | None]  # None: an anonymous comment, never counted
    status: Mapped[str | None] = mapped_column(String(16))
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_rank: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    # The count query reads only this partial index: one entry per counted comment.
    __table_args__ = (
        Index("ix_comment_states_counted", "author_id", postgresql_where=text("status = 'approved' AND NOT deleted")),
    )


EVENT_TABLES = add_event_tables(Base.metadata)
