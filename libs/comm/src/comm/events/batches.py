"""Applies a consumer's deliveries that arrive together in one transaction, each still committed before its ack.

A delivery's task hands (handler, event, meta) to `BatchApplier.apply` and waits; a few workers take what is
waiting and apply it in one transaction: one INSERT records every event id in `processed_events`
(`ON CONFLICT DO NOTHING`), the handlers of the ids not seen before run, one COMMIT. Only then
does `apply` return, so the consumer's ack still follows the commit. Under load this saves the BEGIN, INSERT and
COMMIT round trips (and the WAL flush) of all but one event per batch. Under load (the last batch had more than one)
a worker also waits a few milliseconds for its batch to fill while deliveries keep coming (`LINGER_SECONDS`); when
deliveries come one at a time, each is its own batch and waits for nothing.

Handlers run sorted by their events' `lock_key` (the rows they lock, e.g. the author whose count a comment event
moves), in delivery order where keys are equal: two replicas' batches then take the row locks they share in the
same order and wait for each other instead of deadlocking (the soak found batches of 30 deadlocking under two
replicas, each then retried alone). Events of one key keep their order; events of different keys commute.

When anything in a batch fails (a handler, a deadlock, the commit), the whole transaction rolls back and each of
its events is applied again in its own transaction: the failing event fails alone and goes to retry, the others
are applied once. A handler that takes longer than its timeout (`EVENTS_HANDLER_TIMEOUT_SECONDS`) fails the same
way (TimeoutError), so a hung handler holds back the queue for that long at most. A handler therefore may run
twice for one delivery, the first run rolled back; handlers only write through their session (which a retry
after a failed commit already assumes).
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from sqlalchemy import String, Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comm.events.tables import TABLES

if TYPE_CHECKING:
    from comm.events.consumer import EventMeta, Handler
    from comm.events.models import Event

log = logging.getLogger(__name__)

_processed = TABLES.processed_events
# Built once, so every batch size hits SQLAlchemy's compiled cache (a VALUES list per size would compile anew).
_RECORD_IDS = (
    insert(_processed)
    .from_select(
        [_processed.c.event_id, _processed.c.consumer],
        select(func.unnest(bindparam("event_ids", type_=ARRAY(Uuid))), bindparam("consumer", type_=String)),
    )
    .on_conflict_do_nothing()
    .returning(_processed.c.event_id)
)

# Transactions at a time per consumer. One makes the largest batches: on the bench's drain it moved about 30 %
# more events than two, whose batches halve. The cost is head-of-line blocking: a handler waiting on a lock holds
# back the deliveries behind it (they wait, none is lost).
WORKERS = 1
# Under load (the last batch had company) a worker waits for its batch to fill, a step at a time for as long as
# each step brings more deliveries, up to LINGER_SECONDS: one transaction for more events costs less per event. On
# the bench's drain (make bench-events) batches of about 5 formed without it and mostly full ones (the prefetch)
# with it: about 15 % less CPU per event and 0.37-0.57 -> 0.47-0.72 of raw aio-pika's throughput. A delivery that
# comes alone waits one step at most (none when the last batch was alone too).
LINGER_SECONDS, LINGER_STEP_SECONDS = 0.005, 0.001


@dataclass(kw_only=True)
class _Pending:
    """One delivery waiting to be applied, with the span its handler runs under."""

    handler: "Handler[Any]"
    event: "Event"
    meta: "EventMeta"
    span: trace.Span
    applied: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BatchApplier:
    """The transactions of one consumer; `apply` from the delivery's task, `close` when the consumer stops."""

    def __init__(
        self,
        *,
        queue: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        max_batch: int,
        workers: int = WORKERS,
        handler_timeout: float | None = None,
    ) -> None:
        self._queue = queue
        self._handler_timeout = handler_timeout
        self._worker_count = workers
        self._sessionmaker = sessionmaker
        self._max_batch = max(1, max_batch)
        self._waiting: asyncio.Queue[_Pending] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._under_load = False  # the last batch had more than one delivery

    async def apply(self, handler: "Handler[Any]", event: "Event", meta: "EventMeta") -> bool:
        """Record the id and run the handler, committed when this returns; False when it was applied before."""
        pending = _Pending(handler=handler, event=event, meta=meta, span=trace.get_current_span())
        self._start_workers()
        self._waiting.put_nowait(pending)
        return await pending.applied

    async def close(self) -> None:
        """Stop the workers; call after the deliveries in flight are settled."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        while not self._waiting.empty():
            self._waiting.get_nowait().applied.cancel()

    def _start_workers(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"consumer {self._queue} transactions {n}")
                for n in range(self._worker_count)
            ]

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            batch.sort(key=lambda pending: pending.event.lock_key())
            await self._apply_batch(batch)

    async def _collect(self) -> list[_Pending]:
        """The next batch: what waits, what the next turn of the loop brings and, under load, what comes within
        `LINGER_SECONDS` while it is not full."""
        batch = [await self._waiting.get()]
        try:
            await asyncio.sleep(0)  # the rest of a burst of deliveries already read from the socket
            self._take_waiting(batch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + LINGER_SECONDS
            while self._under_load and len(batch) < self._max_batch and loop.time() < deadline:
                await asyncio.sleep(LINGER_STEP_SECONDS)
                if not self._take_waiting(batch):
                    break  # the burst is over
        except asyncio.CancelledError:
            for pending in batch:  # closing: their deliveries stop waiting, unapplied and unacked
                pending.applied.cancel()
            raise
        self._under_load = len(batch) > 1
        return batch

    def _take_waiting(self, batch: list[_Pending]) -> int:
        """Move what waits into `batch`, up to its limit; how many."""
        taken = 0
        while len(batch) < self._max_batch and not self._waiting.empty():
            batch.append(self._waiting.get_nowait())
            taken += 1
        return taken

    async def _apply_batch(self, batch: list[_Pending]) -> None:
        try:
            applied = await self._in_one_transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            log.info("consumer %s: a batch of %d failed (%s); applying each alone", self._queue, len(batch), exc)
            await asyncio.gather(*(self._apply_batch([pending]) for pending in batch))
            return
        for pending, fresh in zip(batch, applied, strict=True):
            _settle(pending, fresh)

    async def _in_one_transaction(self, batch: list[_Pending]) -> list[bool]:
        """Record the ids and run the new events' handlers in one transaction; which of `batch` were new."""
        # Sorted: concurrent batches lock the ids they share in one order, so they wait, not deadlock.
        ids = sorted({pending.meta.event_id for pending in batch})
        async with self._sessionmaker() as session, session.begin():
            new_ids = set(await session.scalars(_RECORD_IDS, {"event_ids": ids, "consumer": self._queue}))
            applied = []
            for pending in batch:
                fresh = pending.meta.event_id in new_ids
                new_ids.discard(pending.meta.event_id)  # a second delivery of one id in a batch is a duplicate
                if fresh:
                    # The delivery's span, not the worker's: the handler's own spans join the event's trace.
                    with trace.use_span(pending.span, record_exception=False, set_status_on_exception=False):
                        async with asyncio.timeout(self._handler_timeout):
                            await pending.handler(session, pending.event, pending.meta)
                applied.append(fresh)
        return applied


def _settle(pending: _Pending, outcome: bool | Exception) -> None:
    """Hand the outcome to the delivery's task, unless it stopped waiting (the consumer is stopping)."""
    if pending.applied.done():
        return
    if isinstance(outcome, Exception):
        pending.applied.set_exception(outcome)
    else:
        pending.applied.set_result(outcome)
