"""Tracing for every service (DESIGN §5, seed §6): one call per app, `setup_telemetry(app, settings)`.

Tracing is always on: an SDK tracer provider named after the service is installed even when nothing exports, so
trace context reaches outgoing requests (ServiceClient injects `traceparent`), messages and log lines. Spans are
exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Each app gets its own provider (its own `service.name` and processors; tests build several apps in one process and
pass an in-memory exporter as `span_processor`); the first one also becomes the process's global provider, which
OpenTelemetry allows to be set only once. Hand `app.state.tracer_provider` to clients built for that app when
several apps share a process; with one app per process the global provider is that app's.
"""

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from comm.settings import CommSettings

# A log format that shows the trace of each line; the ids are on every record once setup_telemetry (or, first thing
# in a service's process, install_log_trace_ids) ran.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s %(message)s"
_UNTRACED_URLS = "/metrics,/health,/ready"  # probes and scrapes would drown the traces that matter


def setup_telemetry(
    app: FastAPI, settings: CommSettings, *, span_processor: SpanProcessor | None = None
) -> TracerProvider:
    """Trace the app's requests under `settings.service_name`; returns (and keeps in app.state) its provider."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    if settings.otel_exporter_otlp_endpoint:
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    _install_process_globals(provider)
    # The per-message "receive"/"send" spans double the cost of a request and tell nothing the server span doesn't.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=_UNTRACED_URLS, exclude_spans=["receive", "send"]
    )
    app.state.tracer_provider = provider
    return provider


def _install_process_globals(provider: TracerProvider) -> None:
    """Once per process: the global provider, W3C trace context + baggage, trace ids on log records."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    install_log_trace_ids()


def install_log_trace_ids() -> None:
    """Stamp the current trace and span ids on every log record made from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "adds_trace_ids", False):
        logging.setLogRecordFactory(_with_trace_ids(factory))


def _with_trace_ids(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A record factory that stamps `trace_id` and `span_id` (hex; "0" outside a span) on every record."""

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else "0"
        record.span_id = format(context.span_id, "016x") if context.is_valid else "0"
        return record

    make_record.adds_trace_ids = True  # type: ignore[attr-defined]
    return make_record
