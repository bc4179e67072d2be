"""What the comment service does when other services' events arrive.

`<prefix>.post-cleanup`: `post.deleted` takes the post's comments. `<prefix>.authors`: `profile.updated` keeps
the authors' public profiles comment lists are read with (comm.authors).
"""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comm.authors import authors_consumer
from comm.events.consumer import Consumer, EventMeta
from comm.events.models import PostDeleted
from comment import service
from comment.models import AUTHORS
from comment.settings import CommentSettings


async def on_post_deleted(session: AsyncSession, event: PostDeleted, meta: EventMeta) -> None:
    """Tombstone the post and delete its comments, each with its `comment.deleted`."""
    await service.delete_post_comments(session, post_id=event.post_id, deleted_at=event.timestamp)


def post_cleanup(settings: CommentSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> Consumer:
    """The consumer of `<queue_prefix>.post-cleanup`."""
    consumer = Consumer(queue=settings.post_cleanup_queue, settings=settings, sessionmaker=sessionmaker)
    consumer.register(PostDeleted, on_post_deleted)
    return consumer


def authors(settings: CommentSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> Consumer:
    """The consumer of `<queue_prefix>.authors`."""
    return authors_consumer(
        queue_prefix=settings.queue_prefix, settings=settings, sessionmaker=sessionmaker, authors=AUTHORS
    )
