"""Prometheus metrics of every service (docs/architecture.md §5): one registry per process, `service` as a label.

Each metric is created once, at import, in prometheus_client's default `REGISTRY` (which also carries the process
and GC collectors); every app exposes that registry at `/metrics`. A registry per app would not do: the breaker,
retry and event metrics belong to clients and consumers, not to an app, and tests build several apps in one
process (registering a name twice is a duplicate-timeseries error). The `service` label keeps their series apart.

Sections: HTTP server, HTTP client (breaker, retries), events (comm.events.metrics, same registry).
"""

import logging
from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info

__all__ = ["REGISTRY", "record_error", "serve_metrics", "setup_metrics"]

log = logging.getLogger(__name__)

# ---- HTTP server: requests, latency, errors ---------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template (`none` for unmatched paths).",
    ["service", "method", "path", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["service", "method", "path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
ERRORS = Counter(
    "error_total", "Errors rendered by the error handlers, by class name.", ["service", "type"], registry=REGISTRY
)


def setup_metrics(app: FastAPI, service_name: str, *, expose: bool = True) -> None:
    """Count and time every request of `app` under `service_name`, and serve `/metrics` unless `expose` is False
    (the gateway, whose port is public, serves them on a port of their own: `serve_metrics`)."""
    app.state.metrics_service = service_name

    def observe(info: Info) -> None:
        path = info.modified_handler
        HTTP_REQUESTS.labels(service_name, info.method, path, info.modified_status).inc()
        HTTP_REQUEST_DURATION.labels(service_name, info.method, path).observe(info.modified_duration)

    instrumentator = Instrumentator(
        should_group_status_codes=False,
        should_group_untemplated=True,  # unmatched URLs share one `none` series instead of one series each
        excluded_handlers=["^/metrics$"],
        registry=REGISTRY,
    )
    instrumentator.add(observe).instrument(app)
    if expose:
        instrumentator.expose(app, include_in_schema=False)


def serve_metrics(*, host: str, port: int) -> Callable[[], None]:
    """Serve the registry at `http://host:port/metrics` from a thread of its own; returns the function that stops it.

    For an app whose own port is public: route names, error counts and downstream health are for the operator's
    Prometheus, not for every client. prometheus_client's server is made for exactly this side port."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def record_error(app: FastAPI, *, error_type: str) -> None:
    """Count one rendered error for the app's service (nothing if the app has no metrics)."""
    service = getattr(app.state, "metrics_service", None)
    if service is not None:
        ERRORS.labels(service, error_type).inc()


# ---- HTTP client: circuit breakers and retries, per downstream ---------------------------------------------------

BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "Circuit breaker state per downstream: 0 closed, 1 open, 2 half-open.",
    ["service", "downstream"],
    registry=REGISTRY,
)
BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions_total",
    "Circuit breaker state changes per downstream, by the state entered.",
    ["service", "downstream", "to"],
    registry=REGISTRY,
)
CLIENT_RETRIES = Counter(
    "http_client_retries_total",
    "Requests to a downstream sent again after a retryable failure.",
    ["service", "downstream"],
    registry=REGISTRY,
)


# ---- Events: published, consumed, retried, parked, outbox: see comm.events.metrics ------------------------------
