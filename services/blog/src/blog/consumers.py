"""The blog service's consumers: `<queue_prefix>.authors` keeps the authors' public profiles posts are read with."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blog.models import AUTHORS
from blog.settings import BlogSettings
from comm.authors import authors_consumer
from comm.events.consumer import Consumer


def build_consumers(settings: BlogSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Consumer]:
    """The service's consumers, not yet started."""
    return [
        authors_consumer(
            queue_prefix=settings.queue_prefix, settings=settings, sessionmaker=sessionmaker, authors=AUTHORS
        )
    ]
