"""The blog database: posts, categories and favorites; authors are user ids, their public faces a read model."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comm.authors import add_authors_table
from comm.db import service_metadata
from comm.events.tables import add_event_tables


class Base(DeclarativeBase):
    metadata = service_metadata()


class Category(Base):
    """A category posts may belong to; its slug is what clients filter by."""

    __tablename__ = "categories"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Post(Base):
    """A post; a draft until `published_at` is set.

    `updated_at` is set by the use cases that change the content (not by a favorite); `favorites_count` is recounted
    from `favorites` under the post's row lock by every favorite and unfavorite.
    """

    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint("favorites_count >= 0", name="favorites_count_not_negative"),
        # Lists are newest first with the id as tiebreak; the author index serves the author filter and the feed.
        Index("ix_posts_created_at_id", "created_at", "id"),
        Index("ix_posts_author_id_created_at_id", "author_id", "created_at", "id"),
        Index("ix_posts_tag_list", "tag_list", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(String(1000))
    body: Mapped[str] = mapped_column(Text)
    tag_list: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list, server_default="{}")  # sorted, unique
    author_id: Mapped[uuid.UUID]
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("categories.id"), index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    favorites_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Favorite(Base):
    """One user's favorite of one post; the primary key makes favoriting idempotent."""

    __tablename__ = "favorites"
    __table_args__ = (Index("ix_favorites_user_id_post_id", "user_id", "post_id"),)

    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


EVENT_TABLES = add_event_tables(Base.metadata)
# Authors' public profiles, kept from `profile.updated` (comm.authors); posts join them, no foreign key: a post
# is written before its author's first event may have arrived.
AUTHORS = add_authors_table(Base.metadata)
