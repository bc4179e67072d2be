"""Tracing for every service: a tracer provider per app and a server span per request (`TracingMiddleware`).

Tracing is always on: an SDK tracer provider named after the service is installed even when nothing exports, so
trace context reaches outgoing requests (ServiceClient injects `traceparent`), messages and log lines. Spans are
exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Which traces are recorded follows
OpenTelemetry's standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, which the SDK's provider reads (default
`parentbased_always_on`; `parentbased_traceidratio` with `0.1` records one request in ten): parent-based, so the
decision made where a trace starts holds in every service and across the broker. A request that is not recorded
still has its trace and span ids, so log lines and outgoing calls carry them all the same.

Requests are traced by `TracingMiddleware`, one ASGI layer: a server span each, no operation spans (one span per
dependency, endpoint and serialization would cost more than the request), no OpenTelemetry metrics or logs
(Prometheus and our log lines carry those). FastAPI's native telemetry did the same before it, at more than twice
the cost (the middleware says why); it is switched off (`NO_NATIVE_TELEMETRY`), or, once a global provider is set,
it would add a second server span to every app built without that setting. OpenTelemetry's contrib FastAPI
instrumentation, before both, was two layers with its own per-request route lookup.

Each app gets its own provider (its own `service.name` and processors; tests build several apps in one process and
pass an in-memory exporter as `span_processor`); the first one also becomes the process's global provider, which
OpenTelemetry allows to be set only once. Hand `app.state.tracer_provider` to clients built for that app when
several apps share a process; with one app per process the global provider is that app's.
"""

import logging
from collections.abc import Callable
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


# FastAPI's native telemetry, off: TracingMiddleware makes the server span (see the module's docstring).
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


class _AsgiHeaders(Getter[list[tuple[bytes, bytes]]]):
    """The propagators' view of an ASGI scope's headers (lower-case names, as the server gives them)."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_ASGI_HEADERS = _AsgiHeaders()


class ResponseStatus:
    """An ASGI `send` that notes the status the app answers with, for the tracing and metrics layers: 500 until a
    response starts, which is what an exception that escapes every handler becomes."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class TracingMiddleware:
    """One ASGI layer: a server span per HTTP request, named `METHOD /route/{template}`, current while the app runs.

    Written here rather than taken from FastAPI's native telemetry (which served until 2026-12-08) or OpenTelemetry's
    contrib ASGI instrumentation (before it) after counting both (bench/instructions.py): the native layer cost
    the gateway's signed-in article read 380K instructions per request, as much as a whole bare FastAPI request
    (392K), where the SDK's span itself costs about 150K; it walked the middleware stack and parsed the Host header
    on every request, and built a request-telemetry object, a logger lookup and four closures. This one extracts
    the parent from the headers, starts the span with the stable HTTP server attributes the exporters need
    (method, scheme, path, protocol version; then the route, the status and `error.type`), and ends it.
    """

    def __init__(self, app: ASGIApp, *, tracer_provider: TracerProvider) -> None:
        self.app = app
        self._tracer = tracer_provider.get_tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = propagate.extract(scope["headers"], getter=_ASGI_HEADERS)
        attributes = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            "url.path": scope["path"],
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        span = self._tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        answered = ResponseStatus(send)
        try:
            await self.app(scope, receive, answered)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            status = answered.status
            ended: dict[str, str | int] = {"http.response.status_code": status}
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.update_name(f"{method} {route}")
                ended["http.route"] = route
            if status >= 500:
                ended["error.type"] = str(status)
                span.set_status(trace.StatusCode.ERROR)
            span.set_attributes(ended)
            span.end()
            otel_context.detach(token)


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
