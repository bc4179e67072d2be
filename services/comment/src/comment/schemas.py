"""Request and response bodies of the comment service's internal API."""

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from comm.authors import AuthorOut
from comm.events.models import CommentStatus
from comm.timestamps import FormattedTimestamp

BODY_MAX_CHARS = 10_000
NAME_MAX_CHARS = 64
REASON_MAX_CHARS = 500


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000: refuse it here as a 422 rather than fail at the INSERT with a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("can't be blank")
    return value


# The body is kept as written (leading spaces may be markdown); names and reasons are trimmed.
Body = Annotated[
    str, StringConstraints(min_length=1, max_length=BODY_MAX_CHARS), AfterValidator(_no_nul), AfterValidator(_not_blank)
]
AuthorName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_CHARS), AfterValidator(_no_nul)
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX_CHARS), AfterValidator(_no_nul)
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommentIn(Strict):
    """A new comment; `author_name` is required when no user is signed in, and ignored when one is."""

    body: Body
    author_name: AuthorName | None = None


class RejectIn(Strict):
    reason: Reason


class CommentOut(BaseModel):
    """A comment as the gateway sees it; timestamps as `createdAt`/`updatedAt`, like RealWorld's."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: uuid.UUID
    number: int
    post_id: uuid.UUID
    author_id: uuid.UUID | None
    author_name: str | None
    body: str
    status: CommentStatus
    moderation_reason: str | None
    moderator_id: uuid.UUID | None
    # In lists: the author's public profile from the read model (comm.authors), null for an anonymous comment
    # or until the profile has arrived; null in the answers of writes and single reads.
    author: AuthorOut | None = None
    # The API's text: lists select it formatted by PostgreSQL, the rest format the stored comment's (service.py).
    created_at: FormattedTimestamp = Field(serialization_alias="createdAt")
    updated_at: FormattedTimestamp = Field(serialization_alias="updatedAt")


class CommentPage(BaseModel):
    """One page of comments and how many there are in all."""

    comments: list[CommentOut]
    total: int
