"""Authors' public profiles as a read model: the copy of the user service's profiles that blog and comment keep.

An article or a comment list carries its authors' public faces (username, bio, image, commentCount) joined from
the service's own `authors` table in the same query as the posts or comments, so reading one costs no call to the
user service; the gateway asks that service only what depends on the reader (whom they follow, their own profile
as it stands now). The table is fed by `profile.updated` (`comm.events.models.ProfileUpdated`) on the queue
`<prefix>.authors`: a row is replaced only by a higher `version`, which the user service bumps with every change
of a profile, so duplicates and reordering converge and clocks decide nothing. An author whose event has not
arrived yet has no row: reads give `author` null (a LEFT JOIN) and the gateway asks the user service instead.

A service adds the table with `add_authors_table(Base.metadata)` (Alembic writes it into the service's migration
like any table) and starts `authors_consumer(...)` in its lifespan.
"""

from collections.abc import Mapping
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Column, Integer, Label, MetaData, String, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comm.answers import JSONObject
from comm.events.broker import queue_name
from comm.events.consumer import Consumer, EventMeta
from comm.events.models import ProfileUpdated
from comm.settings import CommSettings

# The labels of the author's columns in a joined read (`author_columns`), read back by `author_of`.
_PREFIX = "author_"
_FIELDS = ("username", "bio", "image", "comment_count")
_LABELS = tuple(_PREFIX + name for name in _FIELDS)


class AuthorOut(BaseModel):
    """An author's public face as the read model has it; RealWorld's names, as the gateway passes them on."""

    model_config = ConfigDict(populate_by_name=True)

    username: str
    bio: str | None
    image: str | None
    comment_count: int = Field(serialization_alias="commentCount", validation_alias="commentCount")


def add_authors_table(metadata: MetaData) -> Table:
    """Define `authors` on the service's metadata (for its Alembic migration)."""
    return Table(
        "authors",
        metadata,
        Column("user_id", Uuid, primary_key=True),
        Column("username", String(64), nullable=False),
        Column("bio", Text),
        Column("image", String(2048)),
        Column("comment_count", Integer, nullable=False),
        Column("version", BigInteger, nullable=False),  # the user service's; only a higher one replaces the row
    )


def author_columns(authors: Table) -> list[Label[Any]]:
    """The author's columns for a query that LEFT JOINs `authors`, labelled for `author_of`."""
    return [authors.c[name].label(label) for name, label in zip(_FIELDS, _LABELS, strict=True)]


def author_of(row: Mapping[str, Any] | asyncpg.Record) -> JSONObject | None:
    """The author of a row selected with `author_columns` (a row's mapping, or an asyncpg Record) as `AuthorOut`
    writes it (comm.answers); None when the read model has no row for them yet."""
    return author_answer(*(row[label] for label in _LABELS))


def author_answer(
    username: str | None, bio: str | None, image: str | None, comment_count: int | None
) -> JSONObject | None:
    """The values of `author_columns`, in their order, as `AuthorOut` writes them; None for a missing author (a
    LEFT JOIN that found no row). For a read that takes its rows apart by position (blog's posts)."""
    if username is None:
        return None
    return {"username": username, "bio": bio, "image": image, "commentCount": comment_count}


async def apply_profile(session: AsyncSession, authors: Table, event: ProfileUpdated) -> None:
    """Upsert the author unless the stored version is already as high (helper: inside the consumer's transaction)."""
    statement = insert(authors).values(
        user_id=event.user_id,
        username=event.username,
        bio=event.bio,
        image=event.image,
        comment_count=event.comment_count,
        version=event.version,
    )
    new = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[authors.c.user_id],
            set_={name: new[name] for name in (*_FIELDS, "version")},
            where=authors.c.version < new.version,
        )
    )


def authors_queue(queue_prefix: str) -> str:
    """The queue `profile.updated` reaches a service's read model through."""
    return queue_name(queue_prefix, "authors")


def authors_consumer(
    *, queue_prefix: str, settings: CommSettings, sessionmaker: async_sessionmaker[AsyncSession], authors: Table
) -> Consumer:
    """The consumer that keeps `authors` up to date, not yet started."""

    async def on_profile_updated(session: AsyncSession, event: ProfileUpdated, meta: EventMeta) -> None:
        await apply_profile(session, authors, event)

    consumer = Consumer(queue=authors_queue(queue_prefix), settings=settings, sessionmaker=sessionmaker)
    consumer.register(ProfileUpdated, on_profile_updated)
    return consumer
