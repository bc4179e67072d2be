"""Replaying parked events (comm.events.replay), against the real PostgreSQL and RabbitMQ."""

import os
import subprocess
import sys
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from comm.events.consumer import EventMeta
from comm.events.models import Event, UserCreated
from comm.events.replay import replay, replay_unroutable
from comm.events.testing import wait_until


class Broken:
    """A handler that fails while `broken` is set (a bug, a missing migration ...) and applies events once fixed."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.broken = True

    async def __call__(self, session: AsyncSession, event: Event, meta: EventMeta) -> None:
        if self.broken:
            raise RuntimeError("column profiles.nickname does not exist")
        await self.events.record_effect(session, event, meta)


async def test_parked_events_are_listed_then_replayed_once_the_handler_is_fixed_and_applied_once(events: Any) -> None:
    settings = events.settings
    handler = Broken(events)
    queue = (await events.consumer("replayed", {UserCreated: handler})).queue
    await events.relay()
    ids = await events.write_events([events.user_created(), events.user_created()])

    async def both_parked() -> bool:
        return len(await replay(settings, queue, move=False)) == 2

    await wait_until(both_parked, within=15)
    listed = await replay(settings, queue, move=False)  # listing moves nothing
    assert sorted(parked.event_id for parked in listed) == sorted(str(event_id) for event_id in ids)
    assert {(p.routing_key, p.attempts, p.error) for p in listed} == {
        ("user.created", settings.events_max_attempts, "RuntimeError: column profiles.nickname does not exist")
    }
    assert await events.count_effects(queue=queue) == 0

    handler.broken = False
    assert len(await replay(settings, queue)) == 2

    await wait_until(lambda: events.has_effects(queue=queue, count=2), within=10)
    for event_id in ids:
        assert await events.count_effects(queue=queue, event_id=event_id) == 1
    assert await replay(settings, queue, move=False) == []


def test_the_command_names_a_queue_that_has_no_dlq(events_topology: Any) -> None:
    settings = events_topology.settings
    env = {**os.environ, "RABBITMQ_URL": settings.rabbitmq_url, "EVENTS_EXCHANGE": settings.events_exchange}
    missing = f"{settings.events_exchange}.nobody"
    done = subprocess.run(
        [sys.executable, "-m", "comm.events.replay", missing, "--list"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert f"{missing}.dlq does not exist" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_unroutable_queue_is_bounded_counted_and_replayed_once_a_queue_is_bound(events: Any) -> None:
    settings = events.settings.model_copy(update={"events_unroutable_max_length": 3})
    await events.relay(settings=settings)
    ids = await events.write_events([events.user_created(f"u{i}") for i in range(5)])  # no queue bound yet

    labels = {"service": settings.service_name}
    await wait_until(lambda: REGISTRY.get_sample_value("events_unroutable_messages", labels) == 3, within=10)

    queue = (await events.consumer("late", {UserCreated: events.record_effect})).queue
    assert await replay_unroutable(settings) == 3
    await wait_until(lambda: events.has_effects(queue=queue, count=3), within=10)
    for event_id in ids[2:]:  # the bound keeps the newest
        assert await events.count_effects(queue=queue, event_id=event_id) == 1
    assert await replay_unroutable(settings) == 0
