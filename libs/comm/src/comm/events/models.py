"""Event contracts (docs/architecture.md §4): the seed's `Event` enum as frozen models, its wire format, a registry.

The body is what serde_json writes for the seed's externally tagged enum: `{"UserCreated":{...}}`, compact, fields
in declaration order, lowercase hyphenated UUIDs, `null` for None, chrono timestamps. A model's class name is its
serde variant name. Parsing ignores unknown fields (as serde does) and requires the known ones.

The event id is not in the body: it travels as the AMQP `message_id`. A message without one (a producer built from
the seed sets none) gets `derived_event_id(body)`, a uuid5 over the body bytes, so every redelivery of that message
gets the same id; two events with byte-identical bodies would share it, which the entity id and timestamp inside
every body rule out in practice.
"""

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from comm.events.timestamps import Timestamp

CommentStatus = Literal["pending", "approved", "rejected"]  # the one list: comment's column, API, events

# Fixed forever: changing it changes the derived id of every seed-produced message.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1c7a52-3d0e-5b8a-9c4f-2a7e1b9d0c31")


class MalformedEvent(ValueError):
    """A body that is not one of our events: bad JSON, unknown tag, missing or invalid field."""


class Event(BaseModel):
    """Base of every event; `routing_key` is its topic on the `blog.events` exchange."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    routing_key: ClassVar[str]
    # Fields we added to a seed event: left out of the body while None, so an event without them is byte for byte
    # the seed's.
    omitted_when_none: ClassVar[frozenset[str]] = frozenset()
    # The fields naming the rows its handlers lock, the most shared first: a batch applies its events sorted by
    # them (comm.events.batches), so two replicas' transactions take the locks they share in one order.
    lock_order: ClassVar[tuple[str, ...]] = ()

    def lock_key(self) -> tuple[str, ...]:
        return tuple(str(getattr(self, name) or "") for name in self.lock_order)


class UserCreated(Event):
    """Seed `UserCreatedEvent`: a user registered."""

    routing_key: ClassVar[str] = "user.created"
    lock_order: ClassVar[tuple[str, ...]] = ("user_id",)

    user_id: uuid.UUID
    username: str
    email: str
    timestamp: Timestamp
    # Ours, added at the end: the user's identity version in auth, 1 at registration, +1 per change, set in the
    # same transaction. Consumers order a user's events by it, not by `timestamp` (replicas' clocks differ); None
    # from a producer that does not know it (the seed's), whose events are ordered by timestamp.
    version: int | None = None

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"version"})


class UserUpdated(Event):
    """A user's username or email changed (ours, in the seed's style)."""

    routing_key: ClassVar[str] = "user.updated"
    lock_order: ClassVar[tuple[str, ...]] = ("user_id",)

    user_id: uuid.UUID
    username: str
    email: str
    timestamp: Timestamp
    # Ours, added at the end: the user's identity version in auth, 1 at registration, +1 per change, set in the
    # same transaction. Consumers order a user's events by it, not by `timestamp` (replicas' clocks differ); None
    # from a producer that does not know it (the seed's), whose events are ordered by timestamp.
    version: int | None = None

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"version"})


class PostPublished(Event):
    """Seed `PostPublishedEvent`: a post became public."""

    routing_key: ClassVar[str] = "post.published"
    lock_order: ClassVar[tuple[str, ...]] = ("post_id",)

    post_id: uuid.UUID
    author_id: uuid.UUID
    title: str
    timestamp: Timestamp


class PostUpdated(Event):
    """A post's title or content changed (ours)."""

    routing_key: ClassVar[str] = "post.updated"
    lock_order: ClassVar[tuple[str, ...]] = ("post_id",)

    post_id: uuid.UUID
    author_id: uuid.UUID
    title: str
    timestamp: Timestamp


class PostDeleted(Event):
    """A post was deleted; its comments must go too (ours)."""

    routing_key: ClassVar[str] = "post.deleted"
    lock_order: ClassVar[tuple[str, ...]] = ("post_id",)

    post_id: uuid.UUID
    author_id: uuid.UUID
    timestamp: Timestamp


class CommentCreated(Event):
    """Seed `CommentCreatedEvent` plus `status` after the seed's fields (a Rust consumer ignores it).

    `author_id` None is an anonymous comment. `status` lets comment counts follow approval; a producer built from
    the seed omits it, and then it is what our comment service would have chosen: approved for an authenticated
    comment, pending for an anonymous one.
    """

    routing_key: ClassVar[str] = "comment.created"
    lock_order: ClassVar[tuple[str, ...]] = ("author_id", "comment_id")

    comment_id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID | None
    timestamp: Timestamp
    status: CommentStatus

    @model_validator(mode="before")
    @classmethod
    def _default_status(cls, data: Any) -> Any:
        if isinstance(data, dict) and "status" not in data:
            return {**data, "status": "pending" if data.get("author_id") is None else "approved"}
        return data


class CommentModerated(Event):
    """A moderator approved or rejected a comment (named by the seed, defined by us); `reason` is optional."""

    routing_key: ClassVar[str] = "comment.moderated"
    lock_order: ClassVar[tuple[str, ...]] = ("author_id", "comment_id")

    comment_id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID | None
    moderator_id: uuid.UUID
    status: CommentStatus
    reason: str | None
    timestamp: Timestamp


class CommentDeleted(Event):
    """A comment was deleted (ours)."""

    routing_key: ClassVar[str] = "comment.deleted"
    lock_order: ClassVar[tuple[str, ...]] = ("author_id", "comment_id")

    comment_id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID | None
    timestamp: Timestamp


class ProfileUpdated(Event):
    """A profile's public face changed (ours): created, renamed, bio or image edited, or its comment count moved.

    The user service publishes the whole public face, so a consumer keeps the last one it applied. `version`
    grows by one with every change of the profile, in the same row update: consumers keep the highest version
    (an older or repeated event changes nothing), never ordering by clocks.
    """

    routing_key: ClassVar[str] = "profile.updated"
    lock_order: ClassVar[tuple[str, ...]] = ("user_id",)

    user_id: uuid.UUID
    username: str
    bio: str | None
    image: str | None
    comment_count: int
    version: int
    timestamp: Timestamp


EVENT_TYPES: tuple[type[Event], ...] = (
    UserCreated,
    UserUpdated,
    PostPublished,
    PostUpdated,
    PostDeleted,
    CommentCreated,
    CommentModerated,
    CommentDeleted,
    ProfileUpdated,
)
BY_ROUTING_KEY: Mapping[str, type[Event]] = {model.routing_key: model for model in EVENT_TYPES}
BY_TAG: Mapping[str, type[Event]] = {model.__name__: model for model in EVENT_TYPES}


def encode_event(event: Event) -> bytes:
    """The body serde_json writes for the seed's `Event` enum."""
    omitted = {name for name in event.omitted_when_none if getattr(event, name) is None}
    body = event.model_dump_json(exclude=omitted or None)
    return b'{"' + type(event).__name__.encode() + b'":' + body.encode() + b"}"


def decode_event(body: bytes) -> Event:
    """The event in a body; raises MalformedEvent for anything that is not one of ours."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"body is not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict) or len(data) != 1:
        raise MalformedEvent("body is not an externally tagged event: expected an object with one key")
    ((tag, fields),) = data.items()
    model = BY_TAG.get(tag)
    if model is None:
        raise MalformedEvent(f"unknown event {tag!r}")
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MalformedEvent(f"invalid {tag}: {problems}") from exc


def derived_event_id(body: bytes) -> uuid.UUID:
    """The id of a message that carries no `message_id`: stable for the same body bytes."""
    # uuid5 over the raw bytes (the stdlib's uuid5 takes only text before Python 3.12).
    digest = hashlib.sha1(_DERIVED_ID_NAMESPACE.bytes + body, usedforsecurity=False).digest()
    return uuid.UUID(bytes=digest[:16], version=5)
