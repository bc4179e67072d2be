"""`profile.updated`: the user service tells blog and comment each time a profile's public face changes.

Blog and comment keep a copy of every author's public face (username, bio, image, commentCount) so that an article
or a comment list carries its authors without a call to this service. Each change (creation by the ensure path or
`user.created`, a rename, a bio or image edit, a change of the comment count) bumps the profile's `version` in the
same row update and adds a `ProfileUpdated` with the whole public face to the outbox in the same transaction; the
copies keep the highest version, so duplicates and reordering converge and no clock decides anything.

Every transaction that publishes first takes the profile's advisory lock (`lock_profile`), then changes what it
changes, then reads the comment count in a later statement: under READ COMMITTED that statement sees everything
committed by the transactions that held the lock before, so the event with the highest version carries the count
as it stands. Without the lock a comment event racing the profile's creation (a row not yet visible to it) could
publish nothing while the creation counted without that comment. A consumer batch (several events in one
transaction) takes the locks of its authors in delivery order, so two batches can deadlock: PostgreSQL aborts one
and the consumer applies it again one event per transaction, a delay and nothing lost.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from comm.events.models import ProfileUpdated
from comm.events.outbox import add_event
from user.comment_counts import count_comments
from user.models import Profile


async def lock_profile(session: AsyncSession, user_id: uuid.UUID) -> None:
    """The profile's transaction-scoped advisory lock: its publishing transactions run one after the other."""
    # A 64-bit key from the UUID: a collision between two users only serializes a little more.
    key = int.from_bytes(user_id.bytes[:8], "big", signed=True)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def publish_profile(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Bump the profile's version and add its `ProfileUpdated` to the outbox (helper; a missing profile: nothing).

    Call it after `lock_profile` and after the change, inside the use case's transaction.
    """
    bump = (
        update(Profile)
        .where(Profile.user_id == user_id)
        .values(version=Profile.version + 1)
        .returning(Profile.username, Profile.bio, Profile.image, Profile.version)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(bump)).first()
    if row is None:  # the comment events of a user whose profile has not arrived yet: its creation publishes
        return
    counts = await count_comments(session, author_ids=[user_id])
    await add_event(
        session,
        ProfileUpdated(
            user_id=user_id,
            username=row.username,
            bio=row.bio,
            image=row.image,
            comment_count=counts.get(user_id, 0),
            version=row.version,
            timestamp=datetime.now(UTC),
        ),
    )
