"""Prometheus metrics of every service (docs/architecture.md §5): one registry per process, `service` as a label.

Each metric is created once, at import, in prometheus_client's default `REGISTRY` (which also carries the process
and GC collectors); every app exposes that registry at `/metrics`. A registry per app would not do: the breaker,
retry and event metrics belong to clients and consumers, not to an app, and tests build several apps in one
process (registering a name twice is a duplicate-timeseries error). The `service` label keeps their series apart.

Sections: HTTP server, HTTP client (breaker, retries), events (comm.events.metrics, same registry).
"""

import logging
import time
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from comm.telemetry import ResponseStatus

__all__ = ["REGISTRY", "record_error", "serve_metrics", "setup_metrics"]

log = logging.getLogger(__name__)
UNMEASURED_PATHS = frozenset({"/metrics"})  # the scrapes themselves

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
    app.add_middleware(MetricsMiddleware, service=service_name)
    if expose:
        app.add_route("/metrics", _scrape, include_in_schema=False)


class MetricsMiddleware:
    """One ASGI layer: each HTTP request counted and timed by its route template (`none` when no route matched).

    prometheus-fastapi-instrumentator did this before, and was dropped after measuring it: it matched the request
    against every route a second time to find the template (with FastAPI 0.165's included routers, a walk over
    every route's context), and built a Request, a Response and an Info per request: about 45 µs of the gateway's
    ~500 µs of in-process CPU per article read. The router has already matched the route and left it on the scope
    (`scope["route"]`), so reading it there is all the lookup needed. Same metric names and labels as before: a
    route's path holds its router's prefix (comm.routing).
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMEASURED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = ResponseStatus(send)
        try:
            await self.app(scope, receive, answered)
        finally:
            status = answered.status
            route = scope.get("route")
            path = getattr(route, "path", None) or "none"  # unmatched URLs share one series instead of one each
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, path, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(self.service, method, path).observe(time.perf_counter() - started)


async def _scrape(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


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
