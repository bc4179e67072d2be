"""What every service app has, in one call: body cap, error shape, internal tokens, tracing, metrics, probes."""

from collections.abc import Mapping

from fastapi import FastAPI

from comm.bodylimit import BodyLimitMiddleware
from comm.errors import install_error_handlers
from comm.health import ReadyCheck, add_health_routes, database_check
from comm.metrics import setup_metrics
from comm.settings import CommSettings
from comm.telemetry import setup_telemetry
from comm.tokens import setup_internal_tokens


def bootstrap_app(
    app: FastAPI,
    settings: CommSettings,
    *,
    max_body_bytes: int,
    ready_checks: Mapping[str, ReadyCheck] | None = None,
    expose_metrics: bool = True,
) -> None:
    """Give a service app the platform's common behaviour (DESIGN §2, §3, §5).

    Readiness checks default to the database on `app.state.engine` (see comm.db.open_database). With
    `expose_metrics=False` the app does not serve `/metrics` itself (see comm.metrics.serve_metrics)."""
    if ready_checks is None:
        ready_checks = {"database": lambda: database_check(app.state.engine)()}
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    install_error_handlers(app)
    setup_internal_tokens(app, settings)
    setup_telemetry(app, settings)
    setup_metrics(app, settings.service_name, expose=expose_metrics)
    add_health_routes(app, checks=ready_checks)
