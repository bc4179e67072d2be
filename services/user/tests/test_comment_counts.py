"""Comment counts from per-comment state: any order, any repeats, the same counts as the in-order run."""

import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comm.events.consumer import EventMeta
from comm.events.models import CommentCreated, CommentDeleted, CommentModerated, Event
from user.comment_counts import count_comments
from user.consumers import (
    comment_counts_queue,
    on_comment_created,
    on_comment_deleted,
    on_comment_moderated,
)
from user.settings import UserSettings

Publish = Callable[..., Awaitable[uuid.UUID]]
WaitProcessed = Callable[[str, Iterable[uuid.UUID]], Awaitable[None]]
Headers = Callable[..., dict[str, str]]

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
AUTHORS = 6  # 0-3 write the random comments; 4 and 5 only the written-out cases
HANDLERS: dict[type[Event], Any] = {
    CommentCreated: on_comment_created,
    CommentModerated: on_comment_moderated,
    CommentDeleted: on_comment_deleted,
}


@dataclass(frozen=True)
class Step:
    """One event of a script, with abstract ids: `author` None is anonymous."""

    kind: str  # created | moderated | deleted
    comment: int
    author: int | None
    status: str | None
    at: datetime


def script(rng: random.Random, comments: int = 40) -> list[Step]:
    """Events in the order the comment service emitted them (by timestamp; a moderation tied with its creation
    comes after it), with the cases that matter written out first."""
    steps = [
        Step("created", 0, 5, "approved", T0),
        Step("moderated", 0, 5, "rejected", T0 + timedelta(seconds=1)),  # approved -> rejected
        Step("created", 1, 4, "pending", T0),
        Step("moderated", 1, 4, "approved", T0),  # a tie: the moderation wins
        Step("created", 2, None, "pending", T0),
        Step("moderated", 2, None, "approved", T0 + timedelta(seconds=1)),  # anonymous: never counted
        Step("created", 3, 5, "approved", T0),
        Step("deleted", 3, 5, None, T0 + timedelta(seconds=2)),
    ]
    for comment in range(4, comments):
        author = rng.choice([0, 1, 2, 3, None])
        at = T0 + timedelta(seconds=10 * comment)
        status = "pending" if author is None else rng.choice(["approved", "approved", "pending"])
        steps.append(Step("created", comment, author, status, at))
        for offset in sorted(rng.sample(range(0, 4), k=rng.choice([0, 0, 1, 2]))):
            steps.append(
                Step("moderated", comment, author, rng.choice(["approved", "rejected"]), at + timedelta(seconds=offset))
            )
        if rng.random() < 0.25:
            steps.append(Step("deleted", comment, author, None, at + timedelta(seconds=5)))
    return steps


def expected_counts(steps: list[Step]) -> dict[int, int]:
    """The in-order meaning: each event overwrites the status, a deletion removes the comment."""
    status: dict[int, tuple[int | None, str | None, bool]] = {}
    for step in steps:
        author, current, deleted = status.get(step.comment, (step.author, None, False))
        if step.kind == "deleted":
            status[step.comment] = (author, current, True)
        else:
            status[step.comment] = (author, step.status, deleted)
    counts = dict.fromkeys(range(AUTHORS), 0)
    for author, current, deleted in status.values():
        if author is not None and current == "approved" and not deleted:
            counts[author] += 1
    return counts


class Run:
    """A script made concrete with fresh ids, so several runs share the database without meeting."""

    def __init__(self, steps: list[Step], authors: list[uuid.UUID] | None = None) -> None:
        self.authors = authors or [uuid.uuid4() for _ in range(AUTHORS)]
        comments = {step.comment for step in steps}
        self.comments = {comment: uuid.uuid4() for comment in comments}
        self.posts = {comment: uuid.uuid4() for comment in comments}
        self.events = [self._event(step) for step in steps]

    def _event(self, step: Step) -> Event:
        common: dict[str, Any] = {
            "comment_id": self.comments[step.comment],
            "post_id": self.posts[step.comment],
            "author_id": None if step.author is None else self.authors[step.author],
            "timestamp": step.at,
        }
        if step.kind == "created":
            return CommentCreated(**common, status=step.status)
        if step.kind == "moderated":
            return CommentModerated(**common, moderator_id=uuid.uuid4(), status=step.status, reason="because")
        return CommentDeleted(**common)

    def by_author(self, counts: dict[uuid.UUID, int]) -> dict[int, int]:
        return {index: counts.get(author, 0) for index, author in enumerate(self.authors)}


def shuffled_with_repeats(rng: random.Random, events: list[Event]) -> list[Event]:
    mixed = events + rng.sample(events, k=len(events) // 3)
    rng.shuffle(mixed)
    return mixed


async def apply_directly(sessionmaker: async_sessionmaker[AsyncSession], events: list[Event]) -> None:
    """Each event through its handler in its own transaction, as the consumer runs it (minus the dedup)."""
    for event in events:
        meta = EventMeta(
            event_id=uuid.uuid4(),
            routing_key=event.routing_key,
            queue="test",
            attempt=1,
            producer="test",
            published_at=None,
        )
        async with sessionmaker() as session, session.begin():
            await HANDLERS[type(event)](session, event, meta)


async def counts_of(sessionmaker: async_sessionmaker[AsyncSession], run: Run) -> dict[int, int]:
    async with sessionmaker() as session, session.begin():
        return run.by_author(await count_comments(session, author_ids=run.authors))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
async def test_shuffled_and_repeated_events_give_the_in_order_counts(
    sessionmaker: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rng = random.Random(seed)
    steps = script(rng)
    in_order = Run(steps)
    await apply_directly(sessionmaker, in_order.events)
    expected = expected_counts(steps)
    assert await counts_of(sessionmaker, in_order) == expected
    assert (expected[4], expected[5]) == (1, 0)  # the written-out cases did what they say

    for _ in range(2):
        shuffled = Run(steps)
        await apply_directly(sessionmaker, shuffled_with_repeats(rng, shuffled.events))
        assert await counts_of(sessionmaker, shuffled) == expected


async def test_counts_through_the_real_broker_in_any_order(
    client: httpx.AsyncClient,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    headers_for: Headers,
) -> None:
    rng = random.Random(2026)
    steps = script(rng)
    authors = [uuid.uuid4() for _ in range(AUTHORS)]
    for index, author in enumerate(authors):
        response = await client.put(
            f"/profiles/{author}", json={"username": f"c{index}_{author.hex[:8]}"}, headers=headers_for(author)
        )
        assert response.status_code == 200
    run = Run(steps, authors)
    message_ids = []
    for event in shuffled_with_repeats(rng, run.events):
        message_ids.append(await publish(event))
        if rng.random() < 0.2:  # the same delivery again
            await publish(event, message_id=message_ids[-1])
    await wait_processed(comment_counts_queue(settings), message_ids)

    response = await client.get("/profiles", params={"ids": ",".join(map(str, authors))})
    counts = {uuid.UUID(p["user_id"]): p["commentCount"] for p in response.json()["profiles"]}
    assert run.by_author(counts) == expected_counts(steps)
    assert sum(counts.values()) > 0
