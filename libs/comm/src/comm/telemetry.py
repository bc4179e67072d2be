"""Tracing for every service: a tracer provider per app and FastAPI's own request tracing (`telemetry_config`).

Tracing is always on: an SDK tracer provider named after the service is installed even when nothing exports, so
trace context reaches outgoing requests (ServiceClient injects `traceparent`), messages and log lines. Spans are
exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Which traces are recorded follows
OpenTelemetry's standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, which the SDK's provider reads (default
`parentbased_always_on`; `parentbased_traceidratio` with `0.1` records one request in ten): parent-based, so the
decision made where a trace starts holds in every service and across the broker. A request that is not recorded
still has its trace and span ids, so log lines and outgoing calls carry them all the same.

Requests are traced by FastAPI's native telemetry, one ASGI layer (OpenTelemetry's contrib FastAPI instrumentation
was a second one, with its own per-request route lookup, for the same server span), without its operation spans
(one span per dependency, endpoint and serialization would cost more than the request) and without its
OpenTelemetry metrics and logs (Prometheus and our log lines carry those).

Each app gets its own provider (its own `service.name` and processors; tests build several apps in one process and
pass an in-memory exporter as `span_processor`); the first one also becomes the process's global provider, which
OpenTelemetry allows to be set only once. Hand `app.state.tracer_provider` to clients built for that app when
several apps share a process; with one app per process the global provider is that app's.
"""

import logging
from collections.abc import Callable
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from comm.settings import CommSettings

# A log format that shows the trace of each line; the ids are on every record once tracer_provider (or, first thing
# in a service's process, install_log_trace_ids) ran.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s %(message)s"
_UNTRACED_PATHS = frozenset({"/metrics", "/health", "/ready"})  # probes and scrapes would drown the traces that matter


def tracer_provider(settings: CommSettings, *, span_processor: SpanProcessor | None = None) -> TracerProvider:
    """The app's provider, named `settings.service_name`, sampling as OTEL_TRACES_SAMPLER says (the SDK reads it)."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    if settings.otel_exporter_otlp_endpoint:
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    _install_process_globals(provider)
    return provider


def telemetry_config(provider: TracerProvider) -> TelemetryConfig:
    """`FastAPI(telemetry=...)`: a server span per request on `provider`, nothing else (see the module's docstring)."""
    return {
        "tracer_provider": provider,
        "tracing": True,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "exclude": lambda scope: scope.get("path") in _UNTRACED_PATHS,
    }


def _install_process_globals(provider: TracerProvider) -> None:
    """Once per process: the global provider, W3C trace context + baggage, trace ids on log records."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    install_log_trace_ids()


def install_log_trace_ids() -> None:
    """Stamp the current trace and span ids on every log record made from now on (idempotent).

    OpenTelemetry's logging instrumentation does the same with a record factory of its own; this one is kept
    instead because it is ten lines, names the fields `trace_id` / `span_id` as the text and JSON lines
    (comm.logs) and the log collectors use them, and needs no beta package pinned to the SDK's release.
    """
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
