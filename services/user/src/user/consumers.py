"""The user service's event handlers and the two queues they listen on (docs/architecture.md §4).

`<prefix>.profile-sync`: user.created, user.updated -> profiles.
`<prefix>.comment-counts`: comment.created, comment.moderated, comment.deleted -> comment states.
Each handler runs inside the consumer's transaction (which also records the event id) and never commits. A change
of a profile or of its author's comments publishes `profile.updated` in that transaction (user.profile_events).
"""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comm.events.broker import queue_name
from comm.events.consumer import Consumer, EventMeta
from comm.events.models import CommentCreated, CommentDeleted, CommentModerated, UserCreated, UserUpdated
from user import comment_counts, service
from user.profile_events import lock_profile, publish_profile
from user.settings import UserSettings


async def on_user_created(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
    """A new user: create the profile (or let a newer identity already applied stand)."""
    await service.apply_identity(
        session,
        user_id=event.user_id,
        username=event.username,
        at=event.timestamp,
        kind=service.IdentityEvent.CREATED,
        version=event.version,
    )


async def on_user_updated(session: AsyncSession, event: UserUpdated, meta: EventMeta) -> None:
    """A rename: apply it if it is the newest identity seen for the user."""
    await service.apply_identity(
        session,
        user_id=event.user_id,
        username=event.username,
        at=event.timestamp,
        kind=service.IdentityEvent.UPDATED,
        version=event.version,
    )


async def on_comment_created(session: AsyncSession, event: CommentCreated, meta: EventMeta) -> None:
    if event.author_id is not None:
        await lock_profile(session, event.author_id)
    recorded = await comment_counts.apply_status(
        session,
        comment_id=event.comment_id,
        author_id=event.author_id,
        status=event.status,
        at=event.timestamp,
        kind=comment_counts.StatusEvent.CREATED,
    )
    await _count_changed(session, event.author_id, recorded=recorded)


async def on_comment_moderated(session: AsyncSession, event: CommentModerated, meta: EventMeta) -> None:
    if event.author_id is not None:
        await lock_profile(session, event.author_id)
    recorded = await comment_counts.apply_status(
        session,
        comment_id=event.comment_id,
        author_id=event.author_id,
        status=event.status,
        at=event.timestamp,
        kind=comment_counts.StatusEvent.MODERATED,
    )
    await _count_changed(session, event.author_id, recorded=recorded)


async def on_comment_deleted(session: AsyncSession, event: CommentDeleted, meta: EventMeta) -> None:
    if event.author_id is not None:
        await lock_profile(session, event.author_id)
    recorded = await comment_counts.apply_deleted(session, comment_id=event.comment_id, author_id=event.author_id)
    await _count_changed(session, event.author_id, recorded=recorded)


async def _count_changed(session: AsyncSession, author_id: uuid.UUID | None, *, recorded: bool) -> None:
    """Publish the author's profile after a recorded change of one of their comments (anonymous ones: none)."""
    # A recorded change that leaves the count as it was (pending -> rejected) publishes too: rare and harmless.
    if recorded and author_id is not None:
        await publish_profile(session, author_id)


def profile_sync_queue(settings: UserSettings) -> str:
    return queue_name(settings.queue_prefix, "profile-sync")


def comment_counts_queue(settings: UserSettings) -> str:
    return queue_name(settings.queue_prefix, "comment-counts")


def build_consumers(settings: UserSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Consumer]:
    """The service's consumers, not yet started."""
    profiles = Consumer(queue=profile_sync_queue(settings), settings=settings, sessionmaker=sessionmaker)
    profiles.register(UserCreated, on_user_created)
    profiles.register(UserUpdated, on_user_updated)
    counts = Consumer(queue=comment_counts_queue(settings), settings=settings, sessionmaker=sessionmaker)
    counts.register(CommentCreated, on_comment_created)
    counts.register(CommentModerated, on_comment_moderated)
    counts.register(CommentDeleted, on_comment_deleted)
    return [profiles, counts]
