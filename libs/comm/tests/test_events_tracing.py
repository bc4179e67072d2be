"""Trace context across the broker: request -> outbox row -> relay's PRODUCER span -> consumer's CONSUMER span."""

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncSession

from comm.events.consumer import EventMeta
from comm.events.models import Event, UserCreated
from comm.events.outbox import add_event
from comm.events.testing import wait_until


def spans_of(exporter: InMemorySpanExporter, kind: trace.SpanKind, event_id: str) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.kind is kind and (span.attributes or {}).get("messaging.message.id") == event_id
    ]


async def test_an_event_written_in_a_traced_request_is_published_and_consumed_in_that_trace(
    events_spans: InMemorySpanExporter, events: Any
) -> None:
    failed_once: set[str] = set()

    async def handle(session: AsyncSession, event: Event, meta: EventMeta) -> None:
        if str(meta.event_id) not in failed_once:  # one retry: its span must stay in the trace too
            failed_once.add(str(meta.event_id))
            raise TimeoutError("first try times out")
        await events.record_effect(session, event, meta)

    await events.consumer("traced", {UserCreated: handle})
    await events.relay()

    with trace.get_tracer("test").start_as_current_span("POST /api/users") as request:
        async with events.sessionmaker() as session, session.begin():
            event_id = str(await add_event(session, events.user_created()))
    await wait_until(lambda: len(spans_of(events_spans, trace.SpanKind.CONSUMER, event_id)) == 2)

    [producer] = spans_of(events_spans, trace.SpanKind.PRODUCER, event_id)
    first, second = sorted(spans_of(events_spans, trace.SpanKind.CONSUMER, event_id), key=lambda s: s.start_time or 0)
    trace_id = request.get_span_context().trace_id
    assert {span.context.trace_id for span in (producer, first, second) if span.context} == {trace_id}
    assert producer.context is not None
    assert [span.parent.span_id if span.parent else None for span in (producer, first, second)] == [
        request.get_span_context().span_id,
        producer.context.span_id,
        producer.context.span_id,
    ]
    assert producer.name == "publish user.created"
    assert first.status.status_code is trace.StatusCode.ERROR
    assert second.status.status_code is trace.StatusCode.UNSET
