"""Request and response bodies of the blog service's internal API.

Field names: what RealWorld defines keeps RealWorld's name (`tagList`, `createdAt`, `favoritesCount`, ...), so the
gateway copies it through; identifiers keep the seed's (`id`, `author_id`), as comm's `BlogServiceClient` reads them;
our own additions follow RealWorld's camelCase (`publishedAt`).
"""

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from comm.authors import AuthorOut
from comm.timestamps import FormattedTimestamp

MAX_TAGS = 20
MAX_FEED_AUTHORS = 10_000
MAX_LOOKUP_IDS = 100


def clean_text(value: str) -> str:
    """PostgreSQL stores neither NUL nor lone surrogates: refuse them here, as a 422, before the database sees them."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("can't be blank")
    return value


def _at_most(limit: int) -> Any:
    """Refuse an over-long list before its items are validated one by one."""

    def check(value: Any) -> Any:
        if isinstance(value, list) and len(value) > limit:
            raise ValueError(f"at most {limit} items, not {len(value)}")
        return value

    return BeforeValidator(check)


def _sorted_unique(tags: list[str]) -> list[str]:
    return sorted(set(tags))


Text = Annotated[str, AfterValidator(clean_text)]
# Constraints go on `str` itself, before the validators: after one, pydantic checks the length before stripping.
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), AfterValidator(clean_text)
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), AfterValidator(clean_text)
]
Body = Annotated[
    str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(clean_text), AfterValidator(_not_blank)
]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(clean_text)]
TagList = Annotated[list[Tag], _at_most(MAX_TAGS), AfterValidator(_sorted_unique)]
CategorySlug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)]
CategoryName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(clean_text)
]
# Reads select them formatted (queries.py), writes format them (`queries.to_out`): the API's text either way.
Timestamp = FormattedTimestamp


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostIn(Strict):
    """A new post; published at once unless `draft` is true."""

    title: Title
    description: Description
    body: Body
    tag_list: TagList = Field(default_factory=list, alias="tagList")
    category: CategorySlug | None = None
    draft: bool = False


class PostPatch(Strict):
    """Changes to a post: a field left out (or null) stays as it is, except `category`, which null removes."""

    title: Title | None = None
    description: Description | None = None
    body: Body | None = None
    tag_list: TagList | None = Field(None, alias="tagList")
    category: CategorySlug | None = None


class FeedIn(Strict):
    """The authors whose posts make up a feed (the gateway resolves whom the viewer follows)."""

    author_ids: Annotated[list[uuid.UUID], _at_most(MAX_FEED_AUTHORS)]


class LookupIn(Strict):
    ids: Annotated[list[uuid.UUID], _at_most(MAX_LOOKUP_IDS)]


class CategoryIn(Strict):
    """A new category; its slug is derived from the name unless given."""

    name: CategoryName
    slug: CategorySlug | None = None


class CategoryPatch(Strict):
    name: CategoryName | None = None
    slug: CategorySlug | None = None


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    slug: str
    name: str


class CategoryList(BaseModel):
    categories: list[CategoryOut]


class PostSummary(BaseModel):
    """A post as lists show it: everything but the body."""

    id: uuid.UUID
    slug: str
    title: str
    description: str
    tag_list: list[str] = Field(serialization_alias="tagList")
    category: CategoryOut | None
    author_id: uuid.UUID
    # The author's public profile from the read model (comm.authors); null until it has arrived, and in the
    # answers of writes, whose caller already knows the author.
    author: AuthorOut | None = None
    published: bool
    published_at: Timestamp | None = Field(serialization_alias="publishedAt")
    created_at: Timestamp = Field(serialization_alias="createdAt")
    updated_at: Timestamp = Field(serialization_alias="updatedAt")
    favorited: bool
    favorites_count: int = Field(serialization_alias="favoritesCount")


class PostOut(PostSummary):
    """One post, with its body."""

    body: str


class PostList(BaseModel):
    """A page of posts, newest first; `postsCount` counts every match, not just this page."""

    posts: list[PostSummary]
    posts_count: int = Field(serialization_alias="postsCount")


class PostBatch(BaseModel):
    """The posts of a lookup that exist and the caller may see, in the order asked, each once."""

    posts: list[PostSummary]


class Tags(BaseModel):
    """Tags in use on published posts, sorted."""

    tags: list[str]
