"""Consumers (docs/architecture.md §4): a quorum queue per concern, each event applied once, acked after commit.

Per delivery on queue Q:

- a body that does not parse, or an event Q has no handler for, is parked in Q.dlq at once;
- one transaction records (event id, Q) in `processed_events` (`ON CONFLICT DO NOTHING`); when the row was already
  there the delivery is a duplicate and is acked unapplied, otherwise the handler runs in that same transaction;
  the ack follows the commit. Deliveries that arrive together share that transaction (comm.events.batches);
- a handler that raises: the message is republished, with confirms, to Q.retry with `x-attempts` + 1 and comes back
  to Q alone after the retry delay; at `events_max_attempts` it is parked in Q.dlq instead, with `x-error`,
  `x-attempts`, `x-first-failed-at`. The original is acked only after the copy is confirmed, so a crash in between
  leaves two copies, never none, and the dedup drops the extra one.

A database that is unreachable or refusing connections (as a probe confirms) is not the handler's failure: the
delivery is held, unacked
and without using an attempt, while one probe per consumer waits (with backoff) for the database to answer, then
it is applied again. Since every held delivery counts against the prefetch, the broker sends no more meanwhile:
consumption pauses and resumes by itself, and nothing is retried or parked for the outage.

The consumer's loop is supervised (comm.events.supervision): it subscribes, then watches; a channel closed for longer
than `events_stuck_after_seconds` (aio-pika's reconnect did not bring it back) ends the loop, which the supervisor
restarts on a new connection, and a delivery in flight for that long makes `/ready` report the consumer stuck.

Handlers run concurrently up to the prefetch count, so they must tolerate reordering. The consumer
deletes its `processed_events` rows older than their retention (comm.events.retention).
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue
from opentelemetry import propagate, trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from comm.errors import database_unreachable
from comm.events.batches import BatchApplier
from comm.events.broker import Broker, backoff_delay, connect, declare_consumer_queue
from comm.events.deliveries import attempt, event_id, failed_copy
from comm.events.metrics import EVENT_HANDLER_DURATION, EVENTS_CONSUMED
from comm.events.models import Event, MalformedEvent, decode_event
from comm.events.retention import prune_processed_events, start_pruning
from comm.events.supervision import Supervised
from comm.settings import CommSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

E = TypeVar("E", bound=Event)

# How long `start` waits for the queue to be declared before it lets the service start without it.
START_WAIT_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class EventMeta:
    """What a handler may need besides the event itself."""

    event_id: uuid.UUID
    routing_key: str
    queue: str
    attempt: int  # 1 on the first delivery, 2 on the first retry, ...
    producer: str | None  # the producing service (AMQP app_id)
    published_at: datetime | None  # AMQP timestamp, whole seconds


Handler = Callable[[AsyncSession, E, EventMeta], Awaitable[None]]


class Consumer:
    """The handlers of one queue; `start()` and `stop()` in the service's lifespan."""

    def __init__(self, *, queue: str, settings: CommSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.queue = queue
        self._settings = settings
        self._sessionmaker = sessionmaker
        # A batch never exceeds what the broker lets this channel hold unacked.
        self._applier = BatchApplier(
            queue=queue,
            sessionmaker=sessionmaker,
            max_batch=settings.events_prefetch,
            handler_timeout=settings.events_handler_timeout_seconds,
        )
        self._handlers: dict[type[Event], Handler[Any]] = {}
        self._broker: Broker | None = None
        self._channel: AbstractRobustChannel | None = None
        self._amqp_queue: AbstractRobustQueue | None = None
        self._consumer_tag: str | None = None
        self._loop = Supervised.for_settings(f"consumer {queue}", self._consume, settings)
        self._pruning: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self._inflight: dict[asyncio.Task[Any], float] = {}  # a delivery's task -> when it arrived (monotonic)
        self._database_probe: asyncio.Task[None] | None = None  # while the database is unreachable

    def register(self, model: type[E], handler: Handler[E]) -> None:
        """Handle `model` events on this queue; the queue is bound to its routing key at start."""
        if model in self._handlers:
            raise ValueError(f"{self.queue} already handles {model.__name__}")
        self._handlers[model] = handler

    @property
    def routing_keys(self) -> list[str]:
        """The routing keys its queue is bound to: its handlers' events'."""
        return sorted(model.routing_key for model in self._handlers)

    async def start(self) -> None:
        """Connect, declare and consume in the background; returns once its queue is declared, or after
        `START_WAIT_SECONDS` if the broker does not answer by then (the API serves while the broker is away)."""
        if not self._handlers:
            raise RuntimeError(f"consumer {self.queue} has no handlers")
        self._loop.start()
        self._pruning = start_pruning(
            f"consumer {self.queue} pruning",
            partial(prune_processed_events, self._sessionmaker.begin, self.queue),
            keep_seconds=self._settings.processed_events_retention_seconds,
            interval_seconds=self._settings.events_prune_interval_seconds,
        )
        # Declared before the service's relay starts publishing, so what it publishes finds this queue bound.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT_SECONDS):
                await self._ready.wait()

    async def ready(self) -> None:
        """Wait until the queue is declared and consumed."""
        await self._ready.wait()

    def problem(self) -> str | None:
        """Why the consumer is not consuming (dead, restarting, stuck), or None; for `/ready`."""
        return self._loop.problem()

    async def stop(self, *, grace_seconds: float = 30.0) -> None:
        """Stop taking deliveries, let the handlers in flight finish (up to `grace_seconds`), then close."""
        self._stopping = True
        await self._loop.stop()
        for task in (self._pruning, self._database_probe):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._amqp_queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._amqp_queue.cancel(self._consumer_tag)
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace_seconds)
        await self._applier.close()
        await self._close()

    async def _consume(self) -> None:
        """Subscribe (on a new connection), then watch the channel and the deliveries in flight."""
        await self._close()
        await self._subscribe_with_backoff()
        closed_since: float | None = None
        watch_interval = min(1.0, self._settings.events_stuck_after_seconds / 4)
        while True:
            await asyncio.sleep(watch_interval)
            now = time.monotonic()
            if self._channel is None or self._channel.is_closed:
                closed_since = closed_since or now
                if now - closed_since > self._settings.events_stuck_after_seconds:
                    raise ConnectionError(f"channel closed for {now - closed_since:.0f} s")
            else:
                closed_since = None
            oldest = min(self._inflight.values(), default=now)
            if now - oldest <= self._settings.events_stuck_after_seconds:
                self._loop.beat()

    async def _subscribe_with_backoff(self) -> None:
        failures = 0
        while True:
            self._loop.beat()
            try:
                await self._subscribe()
                return
            except Exception as exc:
                failures += 1
                log.warning("consumer %s: cannot subscribe (%s: %s); retrying", self.queue, type(exc).__name__, exc)
                await self._close()
                await asyncio.sleep(
                    backoff_delay(failures=failures, cap=self._settings.events_reconnect_interval_seconds)
                )

    async def _subscribe(self) -> None:
        self._broker = await connect(settings=self._settings, role=f"consumer {self.queue}")
        self._channel = await self._broker.connection.channel()
        await self._channel.set_qos(prefetch_count=self._settings.events_prefetch)
        self._amqp_queue = await declare_consumer_queue(
            self._broker, self._channel, queue=self.queue, routing_keys=self.routing_keys, settings=self._settings
        )
        # Robust: after a reconnect aio-pika re-declares the queue and consumes again with this callback.
        self._consumer_tag = await self._amqp_queue.consume(self._on_message)
        self._ready.set()

    async def _close(self) -> None:
        broker, self._broker = self._broker, None
        self._channel = self._amqp_queue = self._consumer_tag = None
        if broker is not None:
            await broker.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            return  # left unacked: back to the queue when the channel closes
        task = asyncio.current_task()
        assert task is not None
        self._inflight[task] = time.monotonic()
        started = time.perf_counter()
        try:
            with self._span(message):
                outcome, routing_key = await self._settle(message)
        except Exception:
            log.exception("consumer %s: delivery %s left unsettled", self.queue, message.message_id)
            await self._requeue(message)
            return
        finally:
            self._inflight.pop(task, None)
        labels = {"service": self._settings.service_name, "queue": self.queue, "routing_key": routing_key}
        EVENTS_CONSUMED.labels(**labels, outcome=outcome).inc()
        EVENT_HANDLER_DURATION.labels(**labels).observe(time.perf_counter() - started)

    async def _settle(self, message: AbstractIncomingMessage) -> tuple[str, str]:
        """Apply, retry or park one delivery; returns (outcome, routing key)."""
        try:
            event = decode_event(message.body)
        except MalformedEvent as exc:
            _span_failed(exc)
            await self._park(message, error=f"{type(exc).__name__}: {exc}", attempts=attempt(message))
            return "parked", message.type or "unknown"
        trace.get_current_span().set_attribute("messaging.rabbitmq.destination.routing_key", event.routing_key)
        handler = self._handlers.get(type(event))
        if handler is None:
            await self._park(
                message, error=f"NoHandler: {self.queue} has no handler for {event.routing_key}", attempts=1
            )
            return "parked", event.routing_key
        meta = self._meta(message, event)
        try:
            applied = await self._apply(handler, event, meta)
        except DeliveryHeld:
            return "held", event.routing_key  # stopping: back to the queue when the channel closes
        except Exception as exc:
            _span_failed(exc)
            return await self._retry_or_park(message, meta, f"{type(exc).__name__}: {exc}"), event.routing_key
        await message.ack()
        return ("ok" if applied else "duplicate"), event.routing_key

    async def _apply(self, handler: Handler[Any], event: Event, meta: EventMeta) -> bool:
        """Apply the event; while the database is unreachable, hold the delivery and apply it when it is back."""
        while True:
            try:
                return await self._applier.apply(handler, event, meta)
            except Exception as exc:
                # A lost connection may be the handler's own (a call it makes): only the database's holds it.
                if not database_unreachable(exc) or await self._database_answers():
                    raise
                if self._stopping:
                    raise DeliveryHeld from exc
                await self._database_back(exc)

    async def _database_answers(self) -> bool:
        try:
            async with self._sessionmaker() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            if database_unreachable(exc):
                return False
            raise
        return True

    async def _database_back(self, exc: Exception) -> None:
        """Until the database answers: one probe for all the deliveries held meanwhile."""
        if self._database_probe is None or self._database_probe.done():
            log.warning(
                "consumer %s: database unreachable (%s: %s); holding deliveries until it answers",
                self.queue,
                type(exc).__name__,
                exc,
            )
            self._database_probe = asyncio.create_task(self._probe_database(), name=f"consumer {self.queue} probe")
        await asyncio.shield(self._database_probe)  # a held delivery cancelled does not cancel the probe

    async def _probe_database(self) -> None:
        probing = AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.1, max=self._settings.events_reconnect_interval_seconds),
            retry=retry_if_exception(database_unreachable),
            before_sleep=self._still_unreachable,
        )
        async for probe in probing:
            with probe:
                if not await self._database_answers():
                    raise ConnectionError("database unreachable")
        log.info("consumer %s: database answers again; applying the held deliveries", self.queue)

    def _still_unreachable(self, state: RetryCallState) -> None:
        if state.attempt_number % 10 == 0:
            log.warning("consumer %s: database still unreachable after %d probes", self.queue, state.attempt_number)

    async def _retry_or_park(self, message: AbstractIncomingMessage, meta: EventMeta, error: str) -> str:
        log.warning("consumer %s: %s attempt %d failed: %s", self.queue, meta.routing_key, meta.attempt, error)
        if meta.attempt >= self._settings.events_max_attempts:
            await self._park(message, error=error, attempts=meta.attempt)
            return "parked"
        copy = failed_copy(message, error=error, attempts=meta.attempt, queue=self.queue)
        await self._publish(self._connected.retry_exchange, copy, routing_key=self.queue)
        await message.ack()
        return "retried"

    async def _park(self, message: AbstractIncomingMessage, *, error: str, attempts: int) -> None:
        log.error("consumer %s: parking %s in %s: %s", self.queue, message.message_id, self._dlq, error)
        copy = failed_copy(message, error=error, attempts=attempts, queue=self.queue)
        await self._publish(self._connected.channel.default_exchange, copy, routing_key=self._dlq)
        await message.ack()

    async def _publish(
        self, exchange: aio_pika.abc.AbstractExchange, message: aio_pika.Message, *, routing_key: str
    ) -> None:
        async with asyncio.timeout(self._settings.events_publish_timeout_seconds):
            await exchange.publish(message, routing_key=routing_key, mandatory=True)

    async def _requeue(self, message: AbstractIncomingMessage) -> None:
        # Could not settle (the broker is in trouble): after a pause, back to the queue; x-delivery-limit bounds it.
        await asyncio.sleep(min(1.0, self._settings.events_retry_delay_seconds))
        with contextlib.suppress(Exception):
            await message.nack(requeue=True)

    def _meta(self, message: AbstractIncomingMessage, event: Event) -> EventMeta:
        return EventMeta(
            event_id=event_id(message),
            routing_key=event.routing_key,
            queue=self.queue,
            attempt=attempt(message),
            producer=message.app_id,
            published_at=message.timestamp,
        )

    def _span(self, message: AbstractIncomingMessage) -> contextlib.AbstractContextManager[trace.Span]:
        carrier = {key: value for key, value in (message.headers or {}).items() if isinstance(value, str)}
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": self.queue,
            "messaging.message.id": str(event_id(message)),
        }
        # A child of the relay's producer span: one trace from the request that wrote the event.
        return tracer.start_as_current_span(
            f"process {self.queue}",
            context=propagate.extract(carrier),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        )

    @property
    def _dlq(self) -> str:
        return f"{self.queue}.dlq"

    @property
    def _connected(self) -> Broker:
        if self._broker is None:
            raise RuntimeError(f"consumer {self.queue} is not connected")
        return self._broker


class DeliveryHeld(Exception):
    """The consumer stops while the database is unreachable: the delivery is left unsettled for the broker to
    give again."""


def _span_failed(exc: Exception) -> None:
    """Mark the delivery's span failed; the message itself is retried or parked, not lost."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
