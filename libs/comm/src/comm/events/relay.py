"""The outbox relay (docs/architecture.md §4): publishes committed outbox rows with confirms, then marks them sent.

One batch is one transaction: claim up to N unsent rows (`FOR UPDATE SKIP LOCKED`, oldest first), publish them in
that order on one confirming channel, await the confirms, mark the confirmed rows sent, commit. The row locks are
held until that commit, so no other relay (another replica) publishes an id that is in flight here; a relay that
dies between the broker's ack and the commit leaves the rows unsent, they go out again under the same message_id,
and consumers drop the duplicate by id.

"Sent" (`sent_at`) means the broker confirmed custody: the message is in every queue bound to its routing key, or,
when none is bound, in the `<exchange>.unroutable` queue (through the alternate exchange, or sent there by the relay
when the broker returns it). It never means that a consumer got it; only a consumer's own `processed_events` row
says that.

The relay's loop is supervised (comm.events.supervision): any loss of the connection, a channel or a confirm
(aiormq's CancelledError on the confirms of a connection it gave up on included) is a failure of one batch, after
which the relay reconnects; anything else that ends the loop is logged and the loop restarted, and `/ready` says
so meanwhile.

The relay wakes on `LISTEN` (a dedicated asyncpg connection) and polls as a fallback. While the broker is
unreachable it backs off and rows stay pending; writes go on committing meanwhile. It also deletes rows sent longer
ago than their retention (comm.events.retention).
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import aio_pika
import asyncpg
from aio_pika.exceptions import PublishError
from opentelemetry import propagate, trace
from sqlalchemy import Row, Uuid, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from comm.events.broker import Broker, backoff_delay, connect
from comm.events.metrics import EVENTS_PUBLISHED, EVENTS_UNROUTABLE, OUTBOX_BACKLOG, OUTBOX_OLDEST_PENDING_AGE
from comm.events.outbox import NOTIFY_CHANNEL
from comm.events.retention import prune_outbox, start_pruning
from comm.events.supervision import Supervised, lost_cancellation
from comm.events.tables import TABLES
from comm.settings import CommSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
outbox = TABLES.outbox

# One statement for any number of rows, so it stays in SQLAlchemy's compiled cache (an IN list renders per size).
_MARK_SENT = (
    update(outbox)
    .where(outbox.c.id == any_(bindparam("sent_ids", type_=ARRAY(Uuid))))
    .values(sent_at=func.clock_timestamp(), attempts=outbox.c.attempts + 1, last_error=None)
)

BeforeMarkSent = Callable[[list[uuid.UUID]], Awaitable[None]]
OutboxRow = Row[Any, Any, Any, Any, Any]  # id, routing_key, body, headers, created_at


class OutboxRelay:
    """Publishes a service's outbox; `start()` and `stop()` in the lifespan, one per process."""

    def __init__(
        self, *, engine: AsyncEngine, settings: CommSettings, before_mark_sent: BeforeMarkSent | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        # A test seam: called after the broker's acks, before the rows are marked sent.
        self._before_mark_sent = before_mark_sent
        self._broker: Broker | None = None
        self._listener: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._loop = Supervised.for_settings(f"{settings.service_name} outbox relay", self._run, settings)
        self._pruning: asyncio.Task[None] | None = None
        self._gauges_refreshed_at = 0.0

    async def start(self) -> None:
        """Relay in the background; returns at once, whether or not the broker is reachable."""
        name = self._loop.name
        self._loop.start()
        self._pruning = start_pruning(
            f"{name} pruning",
            partial(prune_outbox, self._engine.begin),
            keep_seconds=self._settings.outbox_retention_seconds,
            interval_seconds=self._settings.events_prune_interval_seconds,
        )

    async def stop(self) -> None:
        """Stop relaying; a batch in flight is rolled back and goes out again on the next start."""
        pruning, self._pruning = self._pruning, None
        try:
            await self._loop.stop()
            if pruning is not None:
                pruning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pruning
        finally:
            await self._close_connections()

    def problem(self) -> str | None:
        """Why the relay is not relaying (dead, restarting, stuck), or None; for `/ready`."""
        return self._loop.problem()

    async def _run(self) -> None:
        failures = 0
        while True:
            self._loop.beat()
            self._wake.clear()
            try:
                claimed = await self._relay_once()
                failures = 0
            except (Exception, asyncio.CancelledError) as exc:
                if not isinstance(exc, Exception) and not lost_cancellation(exc):
                    raise  # the relay is being stopped
                failures += 1
                claimed = 0
                log.warning("outbox relay: %s: %s; rows stay pending", type(exc).__name__, exc)
                if not isinstance(exc, SQLAlchemyError):
                    await self._drop_broker()  # whatever broke on the broker's side, start again from a new connection
            await self._refresh_gauges()
            if failures:
                await asyncio.sleep(
                    backoff_delay(failures=failures, cap=self._settings.events_reconnect_interval_seconds)
                )
            elif claimed < self._settings.outbox_batch_size:
                await self._wait_for_work()

    async def _relay_once(self) -> int:
        await self._ensure_listener()
        if self._broker is None:
            self._broker = await connect(settings=self._settings, role="outbox relay")
        return await self._relay_batch(self._broker)

    async def _relay_batch(self, broker: Broker) -> int:
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.routing_key, outbox.c.body, outbox.c.headers, outbox.c.created_at)
                    .where(outbox.c.sent_at.is_(None))
                    .order_by(outbox.c.created_at, outbox.c.id)
                    .limit(self._settings.outbox_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            # The tasks start in claim order and take the channel's write lock in that order: one write each, in
            # order, with the confirms awaited together rather than one round trip per row.
            results = await asyncio.gather(*(self._publish(broker, row) for row in rows), return_exceptions=True)
            sent = [row.id for row, result in zip(rows, results, strict=True) if result is None]
            if self._before_mark_sent is not None:
                await self._before_mark_sent(sent)
            # Losing this commit in a crash only publishes the rows again (consumers drop the duplicate by id),
            # so the relay need not wait for the WAL flush before claiming the next batch. Set here, after the
            # publishes, so that its round trip is not on the way from a commit to its delivery.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            await _mark(conn, rows, results)
        failed = [(row, result) for row, result in zip(rows, results, strict=True) if isinstance(result, BaseException)]
        if failed and len(failed) == len(rows):
            raise failed[0][1]  # nothing went out: the broker's trouble, the relay backs off
        for row, error in failed:  # the others went out: this row's own trouble, no reason to hold the rest back
            log.warning(
                "outbox relay: row %s (%s) not sent: %s: %s", row.id, row.routing_key, type(error).__name__, error
            )
        return len(rows)

    async def _publish(self, broker: Broker, row: OutboxRow) -> None:
        headers: dict[str, Any] = dict(row.headers)
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.destination.name": broker.exchange.name,
            "messaging.rabbitmq.destination.routing_key": row.routing_key,
            "messaging.message.id": str(row.id),
        }
        parent = propagate.extract(headers)  # the request that wrote the row
        with tracer.start_as_current_span(
            f"publish {row.routing_key}", context=parent, kind=trace.SpanKind.PRODUCER, attributes=attributes
        ):
            propagate.inject(headers)  # the consumer's span becomes a child of this producer span
            message = aio_pika.Message(
                body=row.body.encode(),
                headers=headers,
                message_id=str(row.id),
                type=row.routing_key,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                app_id=self._settings.service_name,
                timestamp=row.created_at,
            )
            async with asyncio.timeout(self._settings.events_publish_timeout_seconds):
                try:
                    await broker.exchange.publish(message, routing_key=row.routing_key, mandatory=True)
                except PublishError:
                    # No queue is bound for the key and no alternate-exchange policy is set (comm.events.broker):
                    # do what the alternate exchange would have done.
                    await broker.unroutable_exchange.publish(message, routing_key=row.routing_key, mandatory=True)
        EVENTS_PUBLISHED.labels(service=self._settings.service_name, routing_key=row.routing_key).inc()

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._listener = await asyncpg.connect(url)
            await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            # Not fatal: the poll interval still bounds the delay.
            log.warning("outbox relay: LISTEN unavailable (%s), polling", exc)
            self._listener = None

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.outbox_poll_interval_seconds):
                await self._wake.wait()

    async def _refresh_gauges(self) -> None:
        # At most once per poll interval: the count scans every pending row.
        now = time.monotonic()
        if now - self._gauges_refreshed_at < self._settings.outbox_poll_interval_seconds:
            return
        self._gauges_refreshed_at = now
        pending = outbox.c.sent_at.is_(None)
        age = func.coalesce(func.extract("epoch", func.clock_timestamp() - func.min(outbox.c.created_at)), 0)
        try:
            async with self._engine.connect() as conn:
                backlog, oldest_age = (await conn.execute(select(func.count(), age).where(pending))).one()
        except Exception as exc:
            log.warning("outbox relay: cannot read the backlog: %s", exc)
            return
        OUTBOX_BACKLOG.labels(service=self._settings.service_name).set(backlog)
        OUTBOX_OLDEST_PENDING_AGE.labels(service=self._settings.service_name).set(float(oldest_age))
        await self._refresh_unroutable()

    async def _refresh_unroutable(self) -> None:
        if self._broker is None:
            return
        try:
            async with asyncio.timeout(self._settings.events_publish_timeout_seconds):
                declared = await self._broker.unroutable_queue.declare()
        except Exception as exc:
            log.info("outbox relay: cannot count the unroutable queue: %s: %s", type(exc).__name__, exc)
            return
        EVENTS_UNROUTABLE.labels(service=self._settings.service_name).set(declared.message_count or 0)

    async def _drop_broker(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.close_quietly(within=self._settings.events_publish_timeout_seconds)

    async def _close_connections(self) -> None:
        await self._drop_broker()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()


async def _mark(conn: AsyncConnection, rows: Sequence[OutboxRow], results: Sequence[object]) -> None:
    """Mark the confirmed rows sent; count the attempt and keep the error on the others."""
    sent = [row.id for row, result in zip(rows, results, strict=True) if result is None]
    if sent:
        await conn.execute(_MARK_SENT, {"sent_ids": sent})
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            error = f"{type(result).__name__}: {result}"[:1000]
            await conn.execute(
                update(outbox).where(outbox.c.id == row.id).values(attempts=outbox.c.attempts + 1, last_error=error)
            )
