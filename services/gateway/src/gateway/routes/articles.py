"""`/api/articles`, `/api/tags`, and the extensions on them: drafts, publishing, categories."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, Field

from comm.answers import JSONAnswer
from comm.querystring import query_model
from gateway import articles
from gateway.deps import QueryRead, Reader, Upstreams, read_with_query
from gateway.identity import ANONYMOUS, CurrentViewer
from gateway.schemas import (
    CATEGORY_SLUG,
    USERNAME,
    CategoriesResponse,
    CategoryResponse,
    MultipleArticlesResponse,
    NewArticleRequest,
    NewCategoryRequest,
    SingleArticleResponse,
    TagsResponse,
    UpdateArticleRequest,
    errors,
)

router = APIRouter(prefix="/api", tags=["Articles"])
MAX_PAGE = 100


Limit = Annotated[int, Field(ge=1, le=MAX_PAGE, description="How many articles (1 to 100).")]
Offset = Annotated[int, Field(ge=0, le=2**31 - 1, description="How many articles to skip.")]


class PageQuery(BaseModel):
    """The feed's query string (one model: comm.querystring)."""

    limit: Limit = 20
    offset: Offset = 0


class ListQuery(BaseModel):
    """`GET /api/articles`'s query string: RealWorld's filters and ours, then the page."""

    tag: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$")
    author: str | None = Field(None, pattern=USERNAME)
    favorited: str | None = Field(None, pattern=USERNAME)
    category: str | None = Field(None, max_length=64, pattern=CATEGORY_SLUG, description="Extension: a category slug.")
    drafts: Literal["mine", "only"] | None = Field(
        None, description="Extension: include (`mine`) or list (`only`) your drafts."
    )
    limit: Limit = 20
    offset: Offset = 0


Slug = Annotated[str, Path(max_length=200, pattern=r"^[^\x00]*$")]


# Declared before `/articles/{slug}`, which would otherwise take "feed" for a slug.
@router.get("/articles/feed", response_model=MultipleArticlesResponse, responses=errors(401))
async def feed(
    viewer: CurrentViewer, upstreams: Upstreams, page: Annotated[PageQuery, Depends(query_model(PageQuery))]
) -> JSONAnswer:
    """Most recent articles by users the viewer follows."""
    return JSONAnswer(await articles.feed(upstreams, viewer=viewer, limit=page.limit, offset=page.offset))


@router.get("/articles", response_model=MultipleArticlesResponse, responses=errors(401))
async def list_articles(read: Annotated[QueryRead[ListQuery], Depends(read_with_query(ListQuery))]) -> JSONAnswer:
    """Most recent articles globally, filtered by tag, author, favorited (usernames) or category."""
    query = read.query
    found = await articles.list_articles(
        read.upstreams,
        viewer=read.viewer,
        tag=query.tag,
        author=query.author,
        favorited=query.favorited,
        category=query.category,
        drafts=query.drafts,
        limit=query.limit,
        offset=query.offset,
    )
    return JSONAnswer(found)


@router.post(
    "/articles", status_code=status.HTTP_201_CREATED, response_model=SingleArticleResponse, responses=errors(401, 413)
)
async def create_article(request: NewArticleRequest, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:
    """Create an article (`"draft": true` keeps it a draft, visible only to its author)."""
    article = await articles.create_article(upstreams, viewer=viewer, data=request.article)
    return JSONAnswer({"article": article}, status_code=status.HTTP_201_CREATED)


@router.get("/articles/{slug}", response_model=SingleArticleResponse, responses=errors(401, 404))
async def get_article(slug: Slug, read: Reader) -> JSONAnswer:
    return JSONAnswer({"article": await articles.get_article(read.upstreams, slug=slug, viewer=read.viewer)})


@router.put("/articles/{slug}", response_model=SingleArticleResponse, responses=errors(401, 403, 404, 413))
async def update_article(
    slug: Slug, request: UpdateArticleRequest, viewer: CurrentViewer, upstreams: Upstreams
) -> JSONAnswer:
    """Update an article (its author only); a new title gives a new slug."""
    article = await articles.update_article(upstreams, slug=slug, viewer=viewer, data=request.article)
    return JSONAnswer({"article": article})


@router.delete(
    "/articles/{slug}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404),
)
async def delete_article(slug: Slug, viewer: CurrentViewer, upstreams: Upstreams) -> None:
    """Delete an article (its author only); its comments follow."""
    await articles.delete_article(upstreams, slug=slug, viewer=viewer)


@router.post("/articles/{slug}/publish", response_model=SingleArticleResponse, responses=errors(401, 403, 404))
async def publish_article(slug: Slug, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:
    """Extension: make a draft public (its author only)."""
    return JSONAnswer({"article": await articles.publish_article(upstreams, slug=slug, viewer=viewer)})


@router.post(
    "/articles/{slug}/favorite", tags=["Favorites"], response_model=SingleArticleResponse, responses=errors(401, 404)
)
async def favorite(slug: Slug, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:
    article = await articles.favorite_article(upstreams, slug=slug, viewer=viewer, favorite=True)
    return JSONAnswer({"article": article})


@router.delete(
    "/articles/{slug}/favorite", tags=["Favorites"], response_model=SingleArticleResponse, responses=errors(401, 404)
)
async def unfavorite(slug: Slug, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:
    article = await articles.favorite_article(upstreams, slug=slug, viewer=viewer, favorite=False)
    return JSONAnswer({"article": article})


@router.get("/tags", tags=["Tags"], responses=errors())
async def tags(upstreams: Upstreams) -> TagsResponse:
    return TagsResponse(tags=await upstreams.blog.tags(identity=ANONYMOUS))


@router.get("/categories", tags=["Categories"], responses=errors())
async def categories(upstreams: Upstreams) -> CategoriesResponse:
    """Extension: the categories articles can be filed under."""
    return CategoriesResponse(categories=await articles.categories(upstreams))


@router.post("/categories", status_code=status.HTTP_201_CREATED, tags=["Categories"], responses=errors(401, 403))
async def create_category(request: NewCategoryRequest, viewer: CurrentViewer, upstreams: Upstreams) -> CategoryResponse:
    """Extension: add a category (admins only)."""
    return CategoryResponse(
        category=await articles.create_category(upstreams, viewer=viewer, name=request.category.name)
    )


@router.put("/categories/{category}", tags=["Categories"], responses=errors(401, 403, 404))
async def rename_category(
    category: Annotated[str, Path(max_length=64, pattern=CATEGORY_SLUG)],
    request: NewCategoryRequest,
    viewer: CurrentViewer,
    upstreams: Upstreams,
) -> CategoryResponse:
    """Extension: rename a category (admins only); its slug stays."""
    renamed = await articles.rename_category(upstreams, viewer=viewer, slug=category, name=request.category.name)
    return CategoryResponse(category=renamed)
