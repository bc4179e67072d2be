"""Request and response bodies of the user service's internal API."""

import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from user.errors import InvalidLookup, TooManyLookups

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # auth's rule
Username = Annotated[str, StringConstraints(strip_whitespace=True, pattern=USERNAME_PATTERN)]
MAX_LOOKUPS = 100
IMAGE_MAX_LENGTH = 2048


_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _image_url(value: object) -> object:
    """An http(s) URL, normalised (percent-encoded, punycode host); "" means none, as RealWorld front ends send it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > IMAGE_MAX_LENGTH:
        raise ValueError(f"must be an http(s) URL of at most {IMAGE_MAX_LENGTH} characters")
    try:
        url = str(_HTTP_URL.validate_python(value.strip()))
    except ValidationError:
        raise ValueError("must be an http(s) URL") from None
    if len(url) > IMAGE_MAX_LENGTH:
        raise ValueError(f"must be an http(s) URL of at most {IMAGE_MAX_LENGTH} characters")
    return url


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Bio = Annotated[str, Field(max_length=5000), AfterValidator(_no_nul)]

# Stored as text and never fetched by this service.
ImageUrl = Annotated[str | None, BeforeValidator(_image_url)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnsureIn(Strict):
    username: Username


class ProfileUpdateIn(Strict):
    """Only the fields sent change; null (or "" for image) clears one."""

    bio: Bio | None = None
    image: ImageUrl = None


class ProfileOut(BaseModel):
    """A profile as the viewer sees it; the public fields carry their RealWorld names so the gateway passes them on."""

    user_id: uuid.UUID
    username: str
    bio: str | None
    image: str | None
    following: bool
    comment_count: int = Field(serialization_alias="commentCount")


class ProfilesOut(BaseModel):
    profiles: list[ProfileOut]


class FollowingOut(BaseModel):
    user_ids: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class Lookup:
    """A batch look-up: ids and usernames, deduplicated, at most MAX_LOOKUPS together."""

    ids: list[uuid.UUID]
    usernames: list[str]


class LookupQuery(BaseModel):
    """`?ids=a,b&usernames=c` (repeated parameters work too), read in one step (comm.querystring)."""

    ids: list[str] | None = Field(None, description="user ids, comma-separated and/or repeated")
    usernames: list[str] | None = Field(None, description="usernames, comma-separated and/or repeated")

    def lookup(self) -> Lookup:
        """The ids and usernames asked for; 422 for a bad id or more than 100 names."""
        raw_ids, names = _split(self.ids), _split(self.usernames)
        if len(raw_ids) + len(names) > MAX_LOOKUPS:
            raise TooManyLookups(MAX_LOOKUPS)
        for name in names:
            if not re.fullmatch(USERNAME_PATTERN, name):
                raise InvalidLookup("usernames", name, "is not a valid username")
        return Lookup(ids=[_uuid(value) for value in raw_ids], usernames=names)


def _split(values: list[str] | None) -> list[str]:
    parts = (part.strip() for value in values or () for part in value.split(","))
    return list(dict.fromkeys(part for part in parts if part))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidLookup("ids", value, "is not a valid UUID") from None
