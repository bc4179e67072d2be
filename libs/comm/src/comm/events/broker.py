"""The broker side of events (docs/architecture.md §4): a robust connection and the topology, declared idempotently.

For the events exchange X (`blog.events` by default) and each consuming queue Q:

    X (topic, durable) --bound keys--> Q (quorum, x-delivery-limit) --> handler
      | alternate-exchange (a policy)      | over the delivery limit: dead-lettered to Q.dlq
      | or the relay, for what comes back
      v
    X.unroutable (fanout) --> X.unroutable (queue, bounded): what no queue was bound for, kept for an operator
    X.retry (direct) --key Q--> Q.retry (quorum, x-message-ttl) --dead-letter, key Q--> X.requeue (direct) --key Q--> Q
    default exchange --key Q.dlq--> Q.dlq (quorum): parked with the reason in the headers

A retry dead-letters through X.requeue by the queue's own name, so it comes back to Q only, not to every queue
bound to its routing key. Dead-lettering is at-least-once (quorum queues, `reject-publish`), so a retry is not
lost between the two queues.

X itself is declared as the seed declares it (topic, durable, no arguments), so a Rust service built from the seed
can declare it too: an `alternate-exchange` argument would make their declarations differ, and RabbitMQ refuses
the second one (PRECONDITION_FAILED). The alternate exchange comes from a policy instead (infra/rabbitmq, which
keeps every publisher's unroutable messages), and where no policy is set, the relay publishes with `mandatory`,
gets an unrouted message back and sends it to X.unroutable itself (comm.events.relay): nothing is dropped either
way. A broker that still holds X from a version that declared the argument needs X deleted once.

X.unroutable is bounded (`x-max-length` = `EVENTS_UNROUTABLE_MAX_LENGTH`, the oldest dropped past it): events
nobody consumes (`post.published`, `post.updated`) land there too, and an unbounded queue grew until a disk alarm
blocked every publisher. The alert `EventsUnroutableFilling` fires at half the bound; `python -m
comm.events.replay --unroutable` sends its messages back to X once their queues are bound. A broker that still
holds X.unroutable from a version that declared no bound keeps it as it is (the policy in infra/rabbitmq bounds it).

Everything is durable and re-declared by aio-pika's robust connection after a
reconnect; the objects are held here strongly because aio-pika keeps only weak references to its channels.
"""

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
    AbstractRobustQueue,
    ExchangeType,
)
from aio_pika.exceptions import ChannelPreconditionFailed

from comm.settings import CommSettings

log = logging.getLogger(__name__)

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
# At-least-once dead-lettering (RabbitMQ >= 3.10) needs reject-publish overflow on the source queue.
SAFE_DEAD_LETTERING: dict[str, Any] = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def queue_name(prefix: str, concern: str) -> str:
    """A consumer's queue, `<prefix>.<concern>` (`user.profile-sync`): the one way every queue name is built."""
    return f"{prefix}.{concern}"


@dataclass(frozen=True, kw_only=True)
class Topology:
    """The names derived from the events exchange; a test passes a unique exchange name to run isolated."""

    exchange: str

    @property
    def unroutable(self) -> str:
        return f"{self.exchange}.unroutable"

    @property
    def retry(self) -> str:
        return f"{self.exchange}.retry"

    @property
    def requeue(self) -> str:
        return f"{self.exchange}.requeue"

    @staticmethod
    def retry_queue(queue: str) -> str:
        return f"{queue}.retry"

    @staticmethod
    def dlq(queue: str) -> str:
        return f"{queue}.dlq"


@dataclass(frozen=True, kw_only=True)
class Broker:
    """One robust connection and its confirming channel with the declared exchanges, all held strongly."""

    topology: Topology
    connection: AbstractRobustConnection
    channel: AbstractRobustChannel
    exchange: AbstractRobustExchange
    retry_exchange: AbstractRobustExchange
    requeue_exchange: AbstractRobustExchange
    unroutable_exchange: AbstractRobustExchange
    unroutable_queue: AbstractRobustQueue

    async def close(self) -> None:
        """Close the connection (and with it every channel)."""
        await self.connection.close()

    async def close_quietly(self, *, within: float) -> None:
        """Close a connection that may be broken or hung: within `within` seconds, whatever goes wrong."""
        try:
            async with asyncio.timeout(within):
                await self.connection.close()
        except Exception as exc:
            log.info("closing a broken broker connection: %s: %s", type(exc).__name__, exc)


async def connect(*, settings: CommSettings, role: str) -> Broker:
    """Connect and declare the exchanges; raises when the broker is unreachable."""
    connection = await aio_pika.connect_robust(
        settings.rabbitmq_url,
        reconnect_interval=settings.events_reconnect_interval_seconds,
        timeout=settings.events_publish_timeout_seconds,
        # A broker silent for three heartbeats is given up on (and reconnected to): seconds, not minutes.
        heartbeat=settings.events_heartbeat_seconds,
        client_properties={"connection_name": f"{settings.service_name} {role}"},
    )
    try:
        # on_return_raises: a mandatory publish nobody routes (no alternate exchange) raises, it is not a success.
        channel = await connection.channel(on_return_raises=True)
        return await _declare_exchanges(connection, channel, Topology(exchange=settings.events_exchange), settings)
    except BaseException:
        await connection.close()
        raise


async def _declare_exchanges(
    connection: AbstractRobustConnection, channel: AbstractRobustChannel, topology: Topology, settings: CommSettings
) -> Broker:
    unroutable_exchange = await channel.declare_exchange(topology.unroutable, ExchangeType.FANOUT, durable=True)
    unroutable_queue = await _declare_unroutable_queue(channel, topology, settings)
    await unroutable_queue.bind(unroutable_exchange, "")
    exchange = await channel.declare_exchange(topology.exchange, ExchangeType.TOPIC, durable=True)
    return Broker(
        topology=topology,
        connection=connection,
        channel=channel,
        exchange=exchange,
        retry_exchange=await channel.declare_exchange(topology.retry, ExchangeType.DIRECT, durable=True),
        requeue_exchange=await channel.declare_exchange(topology.requeue, ExchangeType.DIRECT, durable=True),
        unroutable_exchange=unroutable_exchange,
        unroutable_queue=unroutable_queue,
    )


def unroutable_arguments(settings: CommSettings) -> dict[str, Any]:
    """X.unroutable's arguments: a quorum queue of at most `events_unroutable_max_length`, oldest dropped first."""
    return {**QUORUM, "x-max-length": settings.events_unroutable_max_length, "x-overflow": "drop-head"}


async def _declare_unroutable_queue(
    channel: AbstractRobustChannel, topology: Topology, settings: CommSettings
) -> AbstractRobustQueue:
    try:
        return await channel.declare_queue(topology.unroutable, durable=True, arguments=unroutable_arguments(settings))
    except ChannelPreconditionFailed:
        log.warning("%s exists without its bound: kept as it is (see comm.events.broker)", topology.unroutable)
        await channel.reopen()
        return await channel.declare_queue(topology.unroutable, passive=True)


@dataclass(frozen=True, kw_only=True)
class ConsumerTopology:
    """What one consumer queue Q needs on the broker: its queues (name -> arguments, Q.dlq, Q, Q.retry) and
    bindings ((exchange, queue, routing key)). The one description that the consumers declare and that
    infra/rabbitmq/definitions.json declares for the default queue names (tests/test_deployment.py)."""

    queues: dict[str, dict[str, Any]]
    bindings: list[tuple[str, str, str]]


def consumer_topology(
    topology: Topology, *, queue: str, routing_keys: list[str], settings: CommSettings
) -> ConsumerTopology:
    """Q, Q.retry and Q.dlq with their arguments, Q bound to `routing_keys` and to X.requeue, Q.retry to X.retry."""
    main = {
        **QUORUM,
        **SAFE_DEAD_LETTERING,
        "x-delivery-limit": settings.events_delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.dlq(queue),
    }
    # Q.retry holds a failed message for the retry delay, then dead-letters it through X.requeue to Q alone.
    retry = {
        **QUORUM,
        **SAFE_DEAD_LETTERING,
        "x-message-ttl": round(settings.events_retry_delay_seconds * 1000),
        "x-dead-letter-exchange": topology.requeue,
        "x-dead-letter-routing-key": queue,
    }
    return ConsumerTopology(
        queues={topology.dlq(queue): dict(QUORUM), queue: main, topology.retry_queue(queue): retry},
        bindings=[
            *((topology.exchange, queue, key) for key in routing_keys),
            (topology.requeue, queue, queue),
            (topology.retry, topology.retry_queue(queue), queue),
        ],
    )


async def declare_consumer_queue(
    broker: Broker, channel: AbstractRobustChannel, *, queue: str, routing_keys: list[str], settings: CommSettings
) -> AbstractRobustQueue:
    """Declare Q, Q.retry and Q.dlq on the consuming channel and bind them; returns Q."""
    wanted = consumer_topology(broker.topology, queue=queue, routing_keys=routing_keys, settings=settings)
    declared = {
        name: await channel.declare_queue(name, durable=True, arguments=arguments)
        for name, arguments in wanted.queues.items()
    }
    exchanges = {
        exchange.name: exchange for exchange in (broker.exchange, broker.requeue_exchange, broker.retry_exchange)
    }
    for exchange, destination, routing_key in wanted.bindings:
        await declared[destination].bind(exchanges[exchange], routing_key)
    return declared[queue]


def backoff_delay(*, failures: int, cap: float) -> float:
    """Capped exponential backoff with jitter: about 0.1 s, 0.2 s, 0.4 s ... up to `cap`."""
    delay = min(cap, 0.05 * 2.0 ** min(failures, 16))
    # Jitter keeps replicas that lost the broker together from reconnecting in lockstep.
    return delay / 2 + random.uniform(0, delay / 2)
