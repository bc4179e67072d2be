"""The RealWorld ("Conduit") bodies, as `shared/conformance/realworld/openapi.yml` specifies, plus our extensions.

Response models never drop null keys (`bio`, `image` must be present when null) and write timestamps with
milliseconds and `Z`, as JavaScript does: RealWorld clients and the Postman suite check that format.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from comm.events.models import CommentStatus
from comm.timestamps import FormattedTimestamp

Timestamp = FormattedTimestamp  # the services' text, passed on (gateway.upstreams)

# The services' own rules, declared here so that the public OpenAPI tells clients (and schemathesis) what is valid.
NoNul = StringConstraints(pattern=r"^[^\x00]*$")
Text = Annotated[str, NoNul]
# Some visible character and no NUL; \x1c-\x1f are spelled out because Python counts them as space, Rust does not.
NonBlank = r"^[^\x00]*[^\x00\s\x1c-\x1f][^\x00]*$"
USERNAME = r"^[A-Za-z0-9_.-]{1,64}$"  # auth's rule
CATEGORY_SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Username = Annotated[str, StringConstraints(pattern=USERNAME)]
Email = Annotated[EmailStr, Field(max_length=254)]
# Auth holds the password rule (AUTH_PASSWORD_MIN_LENGTH / _MAX_LENGTH, 8 to 128 by default) and answers 422 for it;
# the gateway only caps what it forwards.
Password = Annotated[
    str, Field(min_length=1, max_length=4096, description="Within auth's bounds: 8 to 128 characters by default.")
]
ImageUrl = Annotated[
    str, Field(max_length=2048, pattern=r"^(https?://[^\s\x00]+)?$", description="An http(s) URL; empty for none.")
]
Title = Annotated[str, Field(min_length=1, max_length=300, pattern=NonBlank)]
Description = Annotated[str, Field(min_length=1, max_length=1000, pattern=NonBlank)]
ArticleBody = Annotated[str, Field(min_length=1, max_length=100_000, pattern=NonBlank)]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=NonBlank)]
CategorySlug = Annotated[str, Field(max_length=64, pattern=CATEGORY_SLUG)]
CategoryName = Annotated[str, Field(min_length=1, max_length=100, pattern=NonBlank)]
CommentBody = Annotated[str, Field(min_length=1, max_length=10_000, pattern=NonBlank)]
DisplayName = Annotated[str, Field(min_length=1, max_length=64, pattern=NonBlank)]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=NonBlank)]


class Body(BaseModel):
    """Request bodies: unknown fields are ignored, as RealWorld clients send extra ones (e.g. on follow)."""

    model_config = ConfigDict(extra="ignore")


# -- users and profiles ---------------------------------------------------------------------------------------


class NewUser(Body):
    username: Username
    email: Email
    password: Password


class LoginUser(Body):
    email: Email
    password: Annotated[Text, Field(min_length=1, max_length=4096)]


class UpdateUser(Body):
    email: Email | None = None
    username: Username | None = None
    password: Password | None = None
    bio: Annotated[Text, Field(max_length=5000)] | None = None
    image: ImageUrl | None = None


class NewUserRequest(Body):
    user: NewUser


class LoginUserRequest(Body):
    user: LoginUser


class UpdateUserRequest(Body):
    user: UpdateUser


class User(BaseModel):
    email: str
    token: str
    username: str
    bio: str | None
    image: str | None
    roles: list[str] = Field(default_factory=list, description="Extension: `moderator`, `admin`.")


class UserResponse(BaseModel):
    user: User


class Profile(BaseModel):
    username: str
    bio: str | None
    image: str | None
    following: bool
    commentCount: int = Field(0, description="Extension: the user's approved comments.")


class ProfileResponse(BaseModel):
    profile: Profile


# -- articles -------------------------------------------------------------------------------------------------


class NewArticle(Body):
    title: Title
    description: Description
    body: ArticleBody
    tagList: Annotated[list[Tag], Field(max_length=20)] = []
    category: CategorySlug | None = Field(None, description="Extension: a category slug.")
    draft: bool = Field(False, description="Extension: keep the article as a draft, visible only to its author.")


class UpdateArticle(Body):
    title: Title | None = None
    description: Description | None = None
    body: ArticleBody | None = None
    tagList: Annotated[list[Tag], Field(max_length=20)] | None = None
    category: CategorySlug | None = None


class NewArticleRequest(Body):
    article: NewArticle


class UpdateArticleRequest(Body):
    article: UpdateArticle


class ArticleSummary(BaseModel):
    """An article in a list: everything but `body`."""

    slug: str
    title: str
    description: str
    tagList: list[str]
    createdAt: Timestamp
    updatedAt: Timestamp
    favorited: bool
    favoritesCount: int
    author: Profile
    category: str | None = Field(None, description="Extension: the category slug.")
    status: Literal["draft", "published"] = Field("published", description="Extension: drafts are the author's.")


class Article(ArticleSummary):
    body: str


class SingleArticleResponse(BaseModel):
    article: Article


class MultipleArticlesResponse(BaseModel):
    articles: list[ArticleSummary]
    articlesCount: int


class TagsResponse(BaseModel):
    tags: list[str]


# -- comments -------------------------------------------------------------------------------------------------


class NewComment(Body):
    body: CommentBody
    authorName: DisplayName | None = Field(
        None, description="Extension: the display name of an anonymous comment (sent without a token)."
    )


class NewCommentRequest(Body):
    comment: NewComment


class CommentAuthor(Profile):
    guest: bool = Field(
        False,
        description="Extension: true for an anonymous comment's author, a display name that is no registered user's.",
    )


class Comment(BaseModel):
    id: int
    createdAt: Timestamp
    updatedAt: Timestamp
    body: str
    author: CommentAuthor
    status: CommentStatus = Field(
        "approved", description="Extension: anonymous comments stay pending until a moderator approves them."
    )


class SingleCommentResponse(BaseModel):
    comment: Comment


class MultipleCommentsResponse(BaseModel):
    comments: list[Comment]


# -- extensions: categories and moderation ---------------------------------------------------------------------


class Category(BaseModel):
    slug: str
    name: str


class NewCategory(Body):
    name: CategoryName


class NewCategoryRequest(Body):
    category: NewCategory


class CategoryResponse(BaseModel):
    category: Category


class CategoriesResponse(BaseModel):
    categories: list[Category]


class Rejection(Body):
    reason: Reason


class ModeratedComment(Comment):
    """A comment as moderators see it: with its article and the reason of a rejection."""

    articleSlug: str | None = None
    reason: str | None = None


class ModerationQueueResponse(BaseModel):
    comments: list[ModeratedComment]
    commentsCount: int


# -- errors, for the OpenAPI document -------------------------------------------------------------------------


class GenericError(BaseModel):
    """`{"errors": {"body": ["..."]}}`; validation errors may add field keys (`{"errors": {"email": [...]}}`)."""

    errors: dict[str, list[str]]


_ERROR_TEXT = {
    401: "Unauthorized: no valid `Authorization: Token <jwt>`",
    403: "Forbidden",
    404: "Not found",
    413: "Request body too large",
    422: "Invalid request",
    429: "Rate limited (see `Retry-After`)",
    503: "A service behind the gateway is unavailable (see `Retry-After`)",
    504: "A service behind the gateway did not answer in time",
}


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for these error statuses, plus the ones any route may give."""
    return {code: {"model": GenericError, "description": _ERROR_TEXT[code]} for code in (*statuses, 422, 503, 504)}
