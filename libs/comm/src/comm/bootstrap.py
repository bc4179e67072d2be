"""What every service app has, in one call: body cap, deadline, error shape, internal tokens, tracing, metrics,
probes.

The request path is the cost of every call between services, so each concern is one ASGI layer or none: the body
cap is comm.bodylimit's (FastAPI's own `max_body_size` answers a declared oversize body in plain text, outside the
error shape, whatever the handlers render), the deadline comm.deadlines', tracing comm.telemetry's one middleware
(FastAPI's native telemetry off), metrics comm.metrics' one middleware; the error shape, internal tokens and
probes are handlers and routes.
"""

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import SpanProcessor

from comm.bodylimit import BodyLimitMiddleware
from comm.db import Schema
from comm.deadlines import DeadlineMiddleware
from comm.errors import install_error_handlers
from comm.health import ReadyCheck, Worker, add_health_routes, database_check, workers_check
from comm.metrics import setup_metrics
from comm.openapi import document_queries
from comm.settings import CommSettings
from comm.telemetry import NO_NATIVE_TELEMETRY, TracingMiddleware, tracer_provider
from comm.tokens import setup_internal_tokens


def service_app(
    settings: CommSettings,
    *,
    max_body_bytes: int,
    ready_checks: Mapping[str, ReadyCheck] | None = None,
    expose_metrics: bool = True,
    span_processor: SpanProcessor | None = None,
    app_class: type[FastAPI] = FastAPI,
    **fastapi: Any,
) -> FastAPI:
    """A FastAPI app (`fastapi`: title, lifespan, ...) with the platform's common behaviour.

    Readiness checks default to the database on `app.state.engine` (see comm.db.open_database), its schema at the
    head of the migrations of the package named `settings.service_name`, and the relays and consumers started
    with `start_worker`. With
    `expose_metrics=False` the app does not serve `/metrics` itself (see comm.metrics.serve_metrics). The app's
    tracer provider is `app.state.tracer_provider`; tests add an exporter as `span_processor`. `app_class` is a
    FastAPI subclass for an app that must act around every layer (the gateway's edge)."""
    provider = tracer_provider(settings, span_processor=span_processor)
    app = app_class(**fastapi, telemetry=NO_NATIVE_TELEMETRY)
    app.add_middleware(DeadlineMiddleware, default_seconds=settings.request_deadline_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.state.settings = settings
    app.state.tracer_provider = provider
    app.state.workers = []
    if ready_checks is None:
        schema = Schema.of(settings.service_name)  # the service's package is named after it
        ready_checks = {
            "database": lambda: database_check(app.state.engine, schema=schema)(),
            "events": workers_check(lambda: app.state.workers),
        }
    install_error_handlers(app)
    setup_internal_tokens(app, settings)
    document_queries(app)
    setup_metrics(app, settings.service_name, expose=expose_metrics)
    app.add_middleware(TracingMiddleware, tracer_provider=provider)  # outermost of these: the others run in its span
    add_health_routes(app, checks=ready_checks)
    return app


async def start_worker(stack: AsyncExitStack, app: FastAPI, worker: Worker) -> None:
    """Start a relay or consumer in the lifespan: it runs in the background, stops with `stack` and is one of
    the things `/ready` checks."""
    await worker.start()
    stack.push_async_callback(worker.stop)
    app.state.workers.append(worker)
