"""The category use cases: anyone lists them, admins create and rename them (the routes check the role)."""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from blog.errors import CategoryNotFound, Taken
from blog.models import Category
from blog.schemas import CategoryIn, CategoryList, CategoryOut, CategoryPatch
from blog.slugs import slugify
from comm.db import violated_constraint
from comm.errors import Validation

_SLUG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


async def list_categories(session: AsyncSession) -> CategoryList:
    """Every category, by name."""
    categories = await session.scalars(select(Category).order_by(Category.name, Category.slug))
    return CategoryList(categories=[CategoryOut.model_validate(category) for category in categories])


async def create_category(session: AsyncSession, *, data: CategoryIn) -> CategoryOut:
    """A new category; its slug is derived from the name unless given."""
    slug = data.slug or _slug_from(data.name)
    async with session.begin():
        await _ensure_free(session, slug=slug, name=data.name)
        category = Category(slug=slug, name=data.name)
        session.add(category)
        await _flush_unique(session)
    return CategoryOut.model_validate(category)


async def update_category(session: AsyncSession, *, slug: str, data: CategoryPatch) -> CategoryOut:
    """Rename a category, or change its slug; its posts follow (they refer to it by id)."""
    async with session.begin():
        category = await session.scalar(select(Category).where(Category.slug == slug).with_for_update())
        if category is None:
            raise CategoryNotFound()
        new_slug, new_name = data.slug or category.slug, data.name or category.name
        if (new_slug, new_name) != (category.slug, category.name):
            await _ensure_free(session, slug=new_slug, name=new_name, except_slug=category.slug)
            category.slug, category.name = new_slug, new_name
            category.updated_at = func.now()
            await _flush_unique(session)
    return CategoryOut(slug=category.slug, name=category.name)


def _slug_from(name: str) -> str:
    slug = slugify(name, fallback="")
    if not slug or not set(slug) <= _SLUG_CHARACTERS:
        raise Validation(errors={"slug": ["cannot be derived from this name: give one (a-z, 0-9 and dashes)"]})
    return slug


async def _ensure_free(session: AsyncSession, *, slug: str, name: str, except_slug: str | None = None) -> None:
    """A friendly field-keyed error for the common case; the unique constraints settle races."""
    query = select(Category.slug, Category.name).where((Category.slug == slug) | (Category.name == name))
    if except_slug is not None:
        query = query.where(Category.slug != except_slug)
    rows = (await session.execute(query)).all()
    fields = sorted({"slug" for row in rows if row.slug == slug} | {"name" for row in rows if row.name == name})
    if fields:
        raise Taken(fields)


async def _flush_unique(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        constraint = violated_constraint(exc)
        taken = [field for field in ("slug", "name") if constraint == f"uq_categories_{field}"]
        if not taken:
            raise
        raise Taken(taken) from exc
