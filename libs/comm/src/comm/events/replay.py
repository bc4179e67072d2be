"""Send parked events back to their queue once the cause is fixed (docs/architecture.md §4: parked, never dropped).

    python -m comm.events.replay user.profile-sync            # every message parked in user.profile-sync.dlq
    python -m comm.events.replay user.profile-sync --limit 10
    python -m comm.events.replay user.profile-sync --list     # show them, move nothing
    python -m comm.events.replay --unroutable                 # what no queue was bound for, back to the exchange

A replayed message goes through `<exchange>.requeue` under the queue's own name, so it reaches that queue only,
not every queue bound to its routing key. It keeps its id, body and trace context, drops the failure record
(`x-error`, `x-attempts`, ...) so it gets a full retry budget again, and counts `x-replays`. Each parked message is
acked only after the broker confirmed its copy: a crash in between leaves it in both queues, and the consumer
drops the second by id. A message that fails again is parked again, with the new reason. Reads `RABBITMQ_URL`
and `EVENTS_EXCHANGE` as the services do.

`--unroutable` sends the messages of `<exchange>.unroutable` (comm.events.broker) back to the events exchange under
their routing keys, once the queues they were meant for are bound: each reaches every queue bound now, and one that
still routes nowhere goes back to the unroutable queue (it is taken once per run, so the run ends).
"""

import argparse
import asyncio
import sys
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelNotFoundEntity

from comm.events.broker import Topology, connect
from comm.events.deliveries import event_id, replayed_copy
from comm.settings import CommSettings


@dataclass(frozen=True, kw_only=True)
class Parked:
    """One parked message, as the consumer recorded its failure."""

    event_id: str
    routing_key: str
    attempts: object
    error: str
    first_failed_at: str

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> "Parked":
        headers = message.headers or {}
        return cls(
            event_id=str(event_id(message)),
            routing_key=str(message.type or headers.get("x-routing-key", "")),
            attempts=headers.get("x-attempts", "?"),
            error=str(headers.get("x-error", "(no reason recorded)")),
            first_failed_at=str(headers.get("x-first-failed-at", "?")),
        )

    def __str__(self) -> str:
        since = f"after {self.attempts} attempts, since {self.first_failed_at}"
        return f"{self.event_id} {self.routing_key} {since}: {self.error}"


async def replay(settings: CommSettings, queue: str, *, limit: int | None = None, move: bool = True) -> list[Parked]:
    """Move up to `limit` messages from `queue`'s `.dlq` back to `queue` (or, with `move=False`, only list them)."""
    broker = await connect(settings=settings, role=f"replay {queue}")
    try:
        dlq = await broker.channel.declare_queue(Topology.dlq(queue), passive=True)
        taken: list[AbstractIncomingMessage] = []
        try:
            while limit is None or len(taken) < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                taken.append(message)
                if move:
                    await broker.requeue_exchange.publish(replayed_copy(message), routing_key=queue, mandatory=True)
                    await message.ack()
        finally:
            for message in taken if not move else ():
                await message.nack(requeue=True)  # listed only: back where it was
        return [Parked.of(message) for message in taken]
    finally:
        await broker.close()


async def replay_unroutable(settings: CommSettings, *, limit: int | None = None) -> int:
    """Republish up to `limit` messages of the unroutable queue to the events exchange; returns how many."""
    broker = await connect(settings=settings, role="replay unroutable")
    try:
        declared = await broker.unroutable_queue.declare()
        waiting = declared.message_count or 0
        count = waiting if limit is None else min(limit, waiting)
        moved = 0
        while moved < count and (message := await broker.unroutable_queue.get(no_ack=False, fail=False)):
            routing_key = message.type or message.routing_key or ""
            try:
                await broker.exchange.publish(replayed_copy(message), routing_key=routing_key, mandatory=True)
            except BaseException:
                await message.nack(requeue=True)
                raise
            await message.ack()
            moved += 1
        return moved
    finally:
        await broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m comm.events.replay", description=__doc__.split("\n")[0])
    parser.add_argument("queue", nargs="?", help="the consumer's queue, e.g. user.profile-sync (not its .dlq)")
    parser.add_argument("--unroutable", action="store_true", help="replay the unroutable queue to the exchange")
    parser.add_argument("--limit", type=int, help="at most this many messages")
    parser.add_argument("--list", action="store_true", help="show the parked messages, move nothing")
    args = parser.parse_args()
    if args.unroutable:
        moved = asyncio.run(replay_unroutable(CommSettings(), limit=args.limit))
        print(f"{moved} messages sent back to the exchange from the unroutable queue", file=sys.stderr)
        return
    if args.queue is None:
        parser.error("name a consumer's queue, or --unroutable")
    try:
        parked = asyncio.run(replay(CommSettings(), args.queue, limit=args.limit, move=not args.list))
    except ChannelNotFoundEntity:
        sys.exit(f"{Topology.dlq(args.queue)} does not exist: is {args.queue} a consumer's queue on this broker?")
    for message in parked:
        print(message)
    verb = "parked in" if args.list else "sent back from"
    print(f"{len(parked)} messages {verb} {Topology.dlq(args.queue)}", file=sys.stderr)


if __name__ == "__main__":
    main()
