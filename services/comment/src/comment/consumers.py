"""What the comment service does when other services' events arrive: `post.deleted` takes the post's comments."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comm.events.consumer import Consumer, EventMeta
from comm.events.models import PostDeleted
from comment import service
from comment.settings import CommentSettings


async def on_post_deleted(session: AsyncSession, event: PostDeleted, meta: EventMeta) -> None:
    """Tombstone the post and delete its comments, each with its `comment.deleted` (seed §4.5)."""
    await service.delete_post_comments(session, post_id=event.post_id, deleted_at=event.timestamp)


def post_cleanup(settings: CommentSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> Consumer:
    """The consumer of `<queue_prefix>.post-cleanup`."""
    consumer = Consumer(queue=settings.post_cleanup_queue, settings=settings, sessionmaker=sessionmaker)
    consumer.register(PostDeleted, on_post_deleted)
    return consumer
