"""The gateway's calls to the four services: comm's typed clients with the methods only it needs.

Answers are parsed into small models that name only what the gateway uses (extra fields are ignored), so a service
can add fields freely. Timestamps stay the text the service wrote, already in the API's format (comm.timestamps).
Every call is made for an identity: the viewer's, or the anonymous one.
"""

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from comm.events.models import CommentStatus
from comm.http.clients import AuthServiceClient, BlogServiceClient, CommentServiceClient, UserServiceClient
from comm.timestamps import FormattedTimestamp
from comm.tokens import Identity


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AuthUser(_View):
    id: uuid.UUID
    username: str
    email: str
    roles: list[str] = []
    token: str


class ProfileView(_View):
    user_id: uuid.UUID
    username: str
    bio: str | None
    image: str | None
    following: bool = False
    comment_count: int = Field(0, alias="commentCount")


class Profiles(_View):
    profiles: list[ProfileView]


class AuthorView(_View):
    """An author's public face as blog and comment embed it from their read model (comm.authors)."""

    username: str
    bio: str | None
    image: str | None
    comment_count: int = Field(0, alias="commentCount")


class Following(_View):
    user_ids: list[uuid.UUID]


class CategoryView(_View):
    slug: str
    name: str


class PostView(_View):
    id: uuid.UUID
    slug: str
    title: str
    description: str
    body: str | None = None
    tag_list: list[str] = Field(alias="tagList")
    category: CategoryView | None = None
    author_id: uuid.UUID
    author: AuthorView | None = None  # null while blog's read model has not caught up
    published: bool
    created_at: FormattedTimestamp = Field(alias="createdAt")  # as the service wrote it, passed on as it is
    updated_at: FormattedTimestamp = Field(alias="updatedAt")
    favorited: bool
    favorites_count: int = Field(alias="favoritesCount")


class Posts(_View):
    posts: list[PostView]
    posts_count: int = Field(alias="postsCount")


class PostBatch(_View):
    posts: list[PostView]


class Tags(_View):
    tags: list[str]


class Categories(_View):
    categories: list[CategoryView]


class CommentView(_View):
    id: uuid.UUID
    number: int
    post_id: uuid.UUID
    author_id: uuid.UUID | None
    author_name: str | None
    author: AuthorView | None = None  # in lists; null for an anonymous comment or while the read model catches up
    body: str
    status: CommentStatus
    moderation_reason: str | None = None
    created_at: FormattedTimestamp = Field(alias="createdAt")  # as the service wrote it, passed on as it is
    updated_at: FormattedTimestamp = Field(alias="updatedAt")


class Comments(_View):
    comments: list[CommentView]
    total: int


class AuthClient(AuthServiceClient):
    async def register(self, *, username: str, email: str, password: str, identity: Identity) -> AuthUser:
        body = {"username": username, "email": email, "password": password}
        return await self.http.post("/auth/register", json=body, response_model=AuthUser, identity=identity)

    async def login(self, *, email: str, password: str, identity: Identity) -> AuthUser:
        body = {"email": email, "password": password}
        return await self.http.post("/auth/login", json=body, response_model=AuthUser, identity=identity)

    async def update_me(self, changes: dict[str, Any], *, identity: Identity) -> AuthUser:
        return await self.http.patch("/auth/users/me", json=changes, response_model=AuthUser, identity=identity)

    async def logout_all(self, *, identity: Identity) -> None:
        await self.http.post("/auth/users/me/logout-all", identity=identity)


class UserClient(UserServiceClient):
    async def ensure(self, *, user_id: uuid.UUID, username: str, identity: Identity) -> ProfileView:
        return await self.http.put(
            "/profiles/{user_id}",
            path_params={"user_id": user_id},
            json={"username": username},
            response_model=ProfileView,
            identity=identity,
        )

    async def by_username(self, username: str, *, identity: Identity) -> ProfileView:
        return await self.http.get(
            "/profiles/by-username/{username}",
            path_params={"username": username},
            response_model=ProfileView,
            identity=identity,
        )

    async def by_id(self, user_id: uuid.UUID, *, identity: Identity) -> ProfileView:
        return await self.http.get(
            "/profiles/{user_id}", path_params={"user_id": user_id}, response_model=ProfileView, identity=identity
        )

    async def by_ids(self, ids: Sequence[uuid.UUID], *, identity: Identity) -> dict[uuid.UUID, ProfileView]:
        """Profiles of up to 100 users in one call, by id."""
        if not ids:
            return {}
        params = {"ids": ",".join(str(user_id) for user_id in dict.fromkeys(ids))}
        found = await self.http.get("/profiles", params=params, response_model=Profiles, identity=identity)
        return {profile.user_id: profile for profile in found.profiles}

    async def update_me(self, changes: dict[str, Any], *, identity: Identity) -> ProfileView:
        return await self.http.patch("/profiles/me", json=changes, response_model=ProfileView, identity=identity)

    async def follow(self, username: str, *, follow: bool, identity: Identity) -> ProfileView:
        path = "/profiles/by-username/{username}/follow"
        if follow:
            return await self.http.post(
                path, path_params={"username": username}, response_model=ProfileView, identity=identity
            )
        return await self.http.delete(
            path, path_params={"username": username}, response_model=ProfileView, identity=identity
        )

    async def following(self, *, identity: Identity) -> list[uuid.UUID]:
        return (await self.http.get("/profiles/me/following", response_model=Following, identity=identity)).user_ids


class BlogClient(BlogServiceClient):
    async def create(self, data: dict[str, Any], *, identity: Identity) -> PostView:
        return await self.http.post("/posts", json=data, response_model=PostView, identity=identity)

    async def by_slug(self, slug: str, *, identity: Identity) -> PostView:
        return await self.http.get(
            "/posts/by-slug/{slug}", path_params={"slug": slug}, response_model=PostView, identity=identity
        )

    async def update(self, post_id: uuid.UUID, changes: dict[str, Any], *, identity: Identity) -> PostView:
        return await self.http.patch(
            "/posts/{post_id}",
            path_params={"post_id": post_id},
            json=changes,
            response_model=PostView,
            identity=identity,
        )

    async def delete(self, post_id: uuid.UUID, *, identity: Identity) -> None:
        await self.http.delete("/posts/{post_id}", path_params={"post_id": post_id}, identity=identity)

    async def publish(self, post_id: uuid.UUID, *, identity: Identity) -> PostView:
        return await self.http.post(
            "/posts/{post_id}/publish", path_params={"post_id": post_id}, response_model=PostView, identity=identity
        )

    async def favorite(self, post_id: uuid.UUID, *, favorite: bool, identity: Identity) -> PostView:
        path, params = "/posts/{post_id}/favorite", {"post_id": post_id}
        if favorite:
            return await self.http.put(path, path_params=params, response_model=PostView, identity=identity)
        return await self.http.delete(path, path_params=params, response_model=PostView, identity=identity)

    async def posts(self, params: dict[str, str | int], *, identity: Identity) -> Posts:
        return await self.http.get("/posts", params=params, response_model=Posts, identity=identity)

    async def feed(self, author_ids: Sequence[uuid.UUID], *, limit: int, offset: int, identity: Identity) -> Posts:
        return await self.http.post(
            "/posts/feed",
            json={"author_ids": [str(author) for author in author_ids]},
            params={"limit": limit, "offset": offset},
            response_model=Posts,
            identity=identity,
            headers={"Idempotency-Key": uuid.uuid4().hex},  # a read: safe to send again
        )

    async def slugs(self, post_ids: Iterable[uuid.UUID], *, identity: Identity) -> dict[uuid.UUID, str]:
        """The slugs of up to 100 posts in one call (those the identity may see)."""
        ids = [str(post_id) for post_id in post_ids]
        if not ids:
            return {}
        found = await self.http.post(
            "/posts/lookup",
            json={"ids": ids},
            response_model=PostBatch,
            identity=identity,
            headers={"Idempotency-Key": uuid.uuid4().hex},  # a read: safe to send again
        )
        return {post.id: post.slug for post in found.posts}

    async def tags(self, *, identity: Identity) -> list[str]:
        return (await self.http.get("/tags", response_model=Tags, identity=identity)).tags

    async def categories(self, *, identity: Identity) -> list[CategoryView]:
        return (await self.http.get("/categories", response_model=Categories, identity=identity)).categories

    async def create_category(self, *, name: str, identity: Identity) -> CategoryView:
        return await self.http.post("/categories", json={"name": name}, response_model=CategoryView, identity=identity)

    async def rename_category(self, slug: str, *, name: str, identity: Identity) -> CategoryView:
        return await self.http.patch(
            "/categories/{slug}",
            path_params={"slug": slug},
            json={"name": name},
            response_model=CategoryView,
            identity=identity,
        )


class CommentClient(CommentServiceClient):
    async def create(
        self, post_id: uuid.UUID, *, body: str, author_name: str | None, identity: Identity
    ) -> CommentView:
        return await self.http.post(
            "/posts/{post_id}/comments",
            path_params={"post_id": post_id},
            json={"body": body, "author_name": author_name},
            response_model=CommentView,
            identity=identity,
        )

    async def of_post(self, post_id: uuid.UUID, *, limit: int, offset: int, identity: Identity) -> Comments:
        return await self.http.get(
            "/posts/{post_id}/comments",
            path_params={"post_id": post_id},
            params={"limit": limit, "offset": offset},
            response_model=Comments,
            identity=identity,
        )

    async def delete(self, post_id: uuid.UUID, number: int, *, identity: Identity) -> None:
        await self.http.delete(
            "/posts/{post_id}/comments/{number}", path_params={"post_id": post_id, "number": number}, identity=identity
        )

    async def pending(self, *, limit: int, offset: int, identity: Identity) -> Comments:
        return await self.http.get(
            "/moderation/comments",
            params={"limit": limit, "offset": offset},
            response_model=Comments,
            identity=identity,
        )

    async def moderate(self, number: int, *, approve: bool, reason: str | None, identity: Identity) -> CommentView:
        if approve:
            return await self.http.post(
                "/moderation/comments/{number}/approve",
                path_params={"number": number},
                response_model=CommentView,
                identity=identity,
            )
        return await self.http.post(
            "/moderation/comments/{number}/reject",
            path_params={"number": number},
            json={"reason": reason},
            response_model=CommentView,
            identity=identity,
        )
