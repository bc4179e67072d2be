"""Articles: posts from blog with their authors' public profiles embedded; the reader's part from the user service.

A page of articles costs one blog call, for a signed-in reader too (whom they follow: gateway.authors);
the author and favorited filters first resolve their usernames (concurrently), and the author filter's profile,
fetched for the viewer already, is the author of every article on the page. An unknown username filters
everything out (RealWorld answers an empty list, not 404).
"""

import asyncio
import uuid
from collections.abc import Collection

from comm.answers import JSONObject
from comm.errors import UpstreamClientError
from comm.tokens import Identity
from gateway import authors
from gateway.accounts import own_profile, to_profile
from gateway.deps import Upstreams
from gateway.identity import ANONYMOUS, Viewer, identity_of
from gateway.schemas import Category, NewArticle, UpdateArticle
from gateway.upstreams import PostView, ProfileView


def _summary(post: PostView, author: JSONObject) -> JSONObject:
    """An `ArticleSummary` as written, `author` a `Profile` as written."""
    return {
        "slug": post.slug,
        "title": post.title,
        "description": post.description,
        "tagList": sorted(post.tag_list),
        "createdAt": post.created_at,
        "updatedAt": post.updated_at,
        "favorited": post.favorited,
        "favoritesCount": post.favorites_count,
        "author": author,
        "category": post.category.slug if post.category else None,
        "status": "published" if post.published else "draft",
    }


def to_article(post: PostView, author: ProfileView) -> JSONObject:
    """An `Article` as written."""
    return {**_summary(post, to_profile(author)), "body": post.body or ""}


def _articles(articles: list[JSONObject], count: int) -> JSONObject:
    """A `MultipleArticlesResponse` as written."""
    return {"articles": articles, "articlesCount": count}


async def _page(
    upstreams: Upstreams,
    posts: list[PostView],
    count: int,
    viewer: Viewer | None,
    known: dict[uuid.UUID, ProfileView] | None = None,
    followed: Collection[uuid.UUID] = (),
) -> JSONObject:
    embedded = {post.author_id: post.author for post in posts}
    found = await authors.profiles(upstreams, embedded=embedded, viewer=viewer, known=known, followed=followed)
    faces = {author_id: to_profile(profile) for author_id, profile in found.items()}  # one per author, not per post
    return _articles([_summary(post, faces[post.author_id]) for post in posts if post.author_id in faces], count)


async def _author_of(upstreams: Upstreams, post: PostView, viewer: Viewer | None) -> ProfileView:
    return await authors.profile(upstreams, author_id=post.author_id, embedded=post.author, viewer=viewer)


async def _profile(upstreams: Upstreams, username: str | None, identity: Identity) -> ProfileView | None:
    if username is None:
        return None
    return await upstreams.users.by_username(username, identity=identity)


async def list_articles(
    upstreams: Upstreams,
    *,
    viewer: Viewer | None,
    tag: str | None,
    author: str | None,
    favorited: str | None,
    category: str | None,
    drafts: str | None,
    limit: int,
    offset: int,
) -> JSONObject:
    """Most recent articles matching every filter given."""
    identity = identity_of(viewer)
    try:
        author_profile, favorited_by = await asyncio.gather(
            _profile(upstreams, author, identity), _profile(upstreams, favorited, identity)
        )
    except UpstreamClientError as exc:
        if exc.upstream_status == 404:
            return _articles([], 0)
        raise
    params: dict[str, str | int] = {"limit": limit, "offset": offset}
    for name, value in (
        ("tag", tag),
        ("author_id", author_profile.user_id if author_profile else None),
        ("favorited_by", favorited_by.user_id if favorited_by else None),
        ("category", category),
        ("drafts", drafts),
    ):
        if value is not None:
            params[name] = str(value)
    found = await upstreams.blog.posts(params, identity=identity)
    # Fetched for this viewer a moment ago, and as fresh as the user service has it: no need to ask again.
    known = {author_profile.user_id: author_profile} if author_profile else None
    return await _page(upstreams, found.posts, found.posts_count, viewer, known)


async def feed(upstreams: Upstreams, *, viewer: Viewer, limit: int, offset: int) -> JSONObject:
    """Articles by the users the viewer follows: one call to blog, whom they follow kept by the gateway (or asked
    first), which tells `following` too."""
    followed = await authors.followed_by(upstreams, viewer)
    if not followed:
        return _articles([], 0)
    found = await upstreams.blog.feed(sorted(followed), limit=limit, offset=offset, identity=viewer.identity)
    return await _page(upstreams, found.posts, found.posts_count, viewer, followed=followed)


async def get_article(upstreams: Upstreams, *, slug: str, viewer: Viewer | None) -> JSONObject:
    identity = identity_of(viewer)
    post = await upstreams.blog.by_slug(slug, identity=identity)
    return to_article(post, await _author_of(upstreams, post, viewer))


async def create_article(upstreams: Upstreams, *, viewer: Viewer, data: NewArticle) -> JSONObject:
    """The post and the author's profile are fetched concurrently: they do not depend on each other."""
    body = data.model_dump(exclude_none=True)
    post, author = await asyncio.gather(
        upstreams.blog.create(body, identity=viewer.identity), own_profile(upstreams, viewer=viewer)
    )
    return to_article(post, author)


async def update_article(upstreams: Upstreams, *, slug: str, viewer: Viewer, data: UpdateArticle) -> JSONObject:
    post = await upstreams.blog.by_slug(slug, identity=viewer.identity)
    changes = data.model_dump(exclude_unset=True)
    updated, author = await asyncio.gather(
        upstreams.blog.update(post.id, changes, identity=viewer.identity), _author_of(upstreams, post, viewer)
    )
    return to_article(updated, author)


async def delete_article(upstreams: Upstreams, *, slug: str, viewer: Viewer) -> None:
    post = await upstreams.blog.by_slug(slug, identity=viewer.identity)
    await upstreams.blog.delete(post.id, identity=viewer.identity)


async def publish_article(upstreams: Upstreams, *, slug: str, viewer: Viewer) -> JSONObject:
    post = await upstreams.blog.by_slug(slug, identity=viewer.identity)
    published, author = await asyncio.gather(
        upstreams.blog.publish(post.id, identity=viewer.identity), _author_of(upstreams, post, viewer)
    )
    return to_article(published, author)


async def favorite_article(upstreams: Upstreams, *, slug: str, viewer: Viewer, favorite: bool) -> JSONObject:
    post = await upstreams.blog.by_slug(slug, identity=viewer.identity)
    changed, author = await asyncio.gather(
        upstreams.blog.favorite(post.id, favorite=favorite, identity=viewer.identity),
        _author_of(upstreams, post, viewer),
    )
    return to_article(changed, author)


async def categories(upstreams: Upstreams) -> list[Category]:
    return [Category(slug=c.slug, name=c.name) for c in await upstreams.blog.categories(identity=ANONYMOUS)]


async def create_category(upstreams: Upstreams, *, viewer: Viewer, name: str) -> Category:
    created = await upstreams.blog.create_category(name=name, identity=viewer.identity)
    return Category(slug=created.slug, name=created.name)


async def rename_category(upstreams: Upstreams, *, viewer: Viewer, slug: str, name: str) -> Category:
    renamed = await upstreams.blog.rename_category(slug, name=name, identity=viewer.identity)
    return Category(slug=renamed.slug, name=renamed.name)
