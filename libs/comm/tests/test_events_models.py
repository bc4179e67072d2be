"""The wire format: bodies exactly as serde_json writes the seed's `Event` enum parse, and ours serialise to them."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from comm.events.models import (
    BY_ROUTING_KEY,
    BY_TAG,
    EVENT_TYPES,
    CommentCreated,
    CommentModerated,
    MalformedEvent,
    PostPublished,
    ProfileUpdated,
    UserCreated,
    UserUpdated,
    decode_event,
    derived_event_id,
    encode_event,
)
from comm.events.timestamps import format_event_timestamp, parse_event_timestamp

USER = uuid.UUID("0b5c3a1e-8f0d-4c2b-9a51-6f7e8d9c0a1b")
POST = uuid.UUID("5e7d1c20-3b4a-4f6e-8d9c-0a1b2c3d4e5f")
COMMENT = uuid.UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")

# What serde_json writes for the seed's structs (compact, declaration order, chrono AutoSi timestamps).
SEED_USER_CREATED_NANOS = (
    b'{"UserCreated":{"user_id":"0b5c3a1e-8f0d-4c2b-9a51-6f7e8d9c0a1b","username":"alice",'
    b'"email":"alice@example.com","timestamp":"2026-11-29T12:00:00.123456789Z"}}'
)
SEED_USER_CREATED_MICROS = (
    b'{"UserCreated":{"user_id":"0b5c3a1e-8f0d-4c2b-9a51-6f7e8d9c0a1b","username":"alice",'
    b'"email":"alice@example.com","timestamp":"2026-11-29T12:00:00.123456Z"}}'
)
SEED_POST_PUBLISHED_WHOLE = (
    b'{"PostPublished":{"post_id":"5e7d1c20-3b4a-4f6e-8d9c-0a1b2c3d4e5f",'
    b'"author_id":"0b5c3a1e-8f0d-4c2b-9a51-6f7e8d9c0a1b","title":"Caf\xc3\xa9 \\"du\\" monde\\n\\u0001",'
    b'"timestamp":"2026-11-29T12:00:00Z"}}'
)
SEED_COMMENT_CREATED_ANONYMOUS = (
    b'{"CommentCreated":{"comment_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",'
    b'"post_id":"5e7d1c20-3b4a-4f6e-8d9c-0a1b2c3d4e5f","author_id":null,"timestamp":"2026-11-29T12:00:00.120Z"}}'
)


def test_seed_user_created_with_nanoseconds_parses_and_truncates_to_microseconds() -> None:
    event = decode_event(SEED_USER_CREATED_NANOS)
    assert event == UserCreated(
        user_id=USER,
        username="alice",
        email="alice@example.com",
        timestamp=datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC),
    )
    # Field for field: every seed field is there, only the nanoseconds Python cannot hold are gone.
    assert encode_event(event) == SEED_USER_CREATED_NANOS.replace(b".123456789Z", b".123456Z")


def test_seed_user_created_with_microseconds_is_byte_equal() -> None:
    assert encode_event(decode_event(SEED_USER_CREATED_MICROS)) == SEED_USER_CREATED_MICROS


def test_seed_post_published_with_whole_second_is_byte_equal_escapes_included() -> None:
    event = decode_event(SEED_POST_PUBLISHED_WHOLE)
    assert isinstance(event, PostPublished)
    assert event.title == 'Café "du" monde\n\x01'
    assert event.timestamp == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert encode_event(event) == SEED_POST_PUBLISHED_WHOLE


def test_seed_comment_created_with_null_author_parses_as_anonymous_and_pending() -> None:
    event = decode_event(SEED_COMMENT_CREATED_ANONYMOUS)
    assert event == CommentCreated(
        comment_id=COMMENT,
        post_id=POST,
        author_id=None,
        timestamp=datetime(2026, 11, 29, 12, 0, 0, 120000, tzinfo=UTC),
        status="pending",
    )
    # The seed's fields byte for byte, then ours (`status`), which a serde consumer ignores.
    assert encode_event(event) == SEED_COMMENT_CREATED_ANONYMOUS[:-2] + b',"status":"pending"}}'


def test_comment_created_from_a_seed_producer_with_an_author_is_approved() -> None:
    body = SEED_COMMENT_CREATED_ANONYMOUS.replace(b"null", f'"{USER}"'.encode())
    event = decode_event(body)
    assert isinstance(event, CommentCreated)
    assert (event.author_id, event.status) == (USER, "approved")


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "2026-11-29T12:00:00Z"),
        (120000, "2026-11-29T12:00:00.120Z"),
        (123000, "2026-11-29T12:00:00.123Z"),
        (123456, "2026-11-29T12:00:00.123456Z"),
        (100, "2026-11-29T12:00:00.000100Z"),
    ],
)
def test_timestamps_are_written_as_chrono_autosi(micros: int, text: str) -> None:
    assert format_event_timestamp(datetime(2026, 11, 29, 12, 0, 0, micros, tzinfo=UTC)) == text
    assert parse_event_timestamp(text) == datetime(2026, 11, 29, 12, 0, 0, micros, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-29T12:00:00.5+00:00",
        "2026-11-29T14:00:00.500000000+02:00",
        "2026-11-29t12:00:00.5z",
        "2026-11-29 12:00:00.500Z",
    ],
)
def test_timestamps_accept_any_offset_and_normalise_to_utc(text: str) -> None:
    assert parse_event_timestamp(text) == datetime(2026, 11, 29, 12, 0, 0, 500000, tzinfo=UTC)


def test_aware_datetimes_in_another_zone_are_written_in_utc() -> None:
    paris = datetime(2026, 11, 29, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert format_event_timestamp(paris) == "2026-11-29T12:00:00Z"


@pytest.mark.parametrize(
    "text", ["2026-11-29T12:00:00", "2026-11-29T12:00:00.1234567890Z", "2026-11-29T12:00Z", "yesterday"]
)
def test_timestamps_that_chrono_would_refuse_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_event_timestamp(text)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        UserCreated(user_id=USER, username="a", email="a@x", timestamp=datetime(2026, 1, 1))


def test_unknown_fields_are_ignored() -> None:
    body = SEED_USER_CREATED_MICROS.replace(b'"username"', b'"nickname":"al","extra":{"a":[1]},"username"')
    assert decode_event(body) == decode_event(SEED_USER_CREATED_MICROS)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b'{"UserCreated":{},"PostPublished":{}}', "one key"),
        (b'["UserCreated"]', "one key"),
        (b'{"UserExploded":{}}', "unknown event"),
        (SEED_USER_CREATED_MICROS.replace(b'"email":"alice@example.com",', b""), "email: Field required"),
        (SEED_USER_CREATED_MICROS.replace(b'"alice"', b"42"), "username"),
        (SEED_USER_CREATED_MICROS.replace(b"0b5c3a1e-", b"zz"), "user_id"),
    ],
)
def test_bodies_that_are_not_our_events_are_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode_event(body)


def test_comment_moderated_follows_the_same_style() -> None:
    event = CommentModerated(
        comment_id=COMMENT,
        post_id=POST,
        author_id=None,
        moderator_id=USER,
        status="rejected",
        reason=None,
        timestamp=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    )
    assert encode_event(event) == (
        b'{"CommentModerated":{"comment_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",'
        b'"post_id":"5e7d1c20-3b4a-4f6e-8d9c-0a1b2c3d4e5f","author_id":null,'
        b'"moderator_id":"0b5c3a1e-8f0d-4c2b-9a51-6f7e8d9c0a1b","status":"rejected","reason":null,'
        b'"timestamp":"2026-11-29T12:00:00Z"}}'
    )
    assert decode_event(encode_event(event)) == event


def test_profile_updated_round_trips_in_the_same_style() -> None:
    event = ProfileUpdated(
        user_id=USER,
        username="alice",
        bio='says "hi"',
        image=None,
        comment_count=3,
        version=7,
        timestamp=datetime(2026, 11, 29, 12, 0, 0, 250000, tzinfo=UTC),
    )
    body = (
        b'{"ProfileUpdated":{"user_id":"0b5c3a1e-8f0d-4c2b-9a51-6f7e8d9c0a1b","username":"alice",'
        b'"bio":"says \\"hi\\"","image":null,"comment_count":3,"version":7,"timestamp":"2026-11-29T12:00:00.250Z"}}'
    )
    assert encode_event(event) == body
    assert decode_event(body) == event
    assert BY_ROUTING_KEY["profile.updated"] is ProfileUpdated
    with pytest.raises(MalformedEvent, match="version"):
        decode_event(body.replace(b',"version":7', b""))


def test_models_are_frozen() -> None:
    event = decode_event(SEED_USER_CREATED_MICROS)
    with pytest.raises(ValueError, match="frozen"):
        event.username = "mallory"  # type: ignore[misc]


def test_the_registry_maps_every_routing_key_and_tag_to_one_model() -> None:
    assert set(BY_ROUTING_KEY) == {
        "user.created",
        "user.updated",
        "post.published",
        "post.updated",
        "post.deleted",
        "comment.created",
        "comment.deleted",
        "comment.moderated",
        "profile.updated",
    }
    assert sorted(BY_TAG.values(), key=str) == sorted(BY_ROUTING_KEY.values(), key=str) == sorted(EVENT_TYPES, key=str)


def test_a_message_without_id_gets_an_id_derived_from_its_body() -> None:
    assert derived_event_id(SEED_USER_CREATED_MICROS) == derived_event_id(bytes(SEED_USER_CREATED_MICROS))
    assert derived_event_id(SEED_USER_CREATED_MICROS) != derived_event_id(SEED_USER_CREATED_NANOS)
    assert derived_event_id(SEED_USER_CREATED_MICROS).version == 5


def test_the_identity_version_is_an_additive_field_at_the_end() -> None:
    user_id = uuid.UUID("0b9f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    event = UserUpdated(user_id=user_id, username="bob", email="bob@example.com", timestamp=at, version=7)
    assert encode_event(event).endswith(b',"version":7}}')
    seed_body = encode_event(event.model_copy(update={"version": None}))
    assert b"version" not in seed_body
    assert decode_event(seed_body) == event.model_copy(update={"version": None})
    assert decode_event(encode_event(event)) == event
