"""The gateway app (port 3000): the RealWorld API under `/api`, composed from the four services."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from comm.bootstrap import service_app
from comm.metrics import serve_metrics
from comm.openapi import document_security
from comm.routing import add_routes
from gateway.deps import UpstreamClients
from gateway.edge import EdgeApp
from gateway.follows import Follows
from gateway.identity import TOKEN, TOKEN_SCHEME, TokenValidator
from gateway.ratelimit import RateLimiter
from gateway.routes import articles, comments, users
from gateway.settings import GatewaySettings
from gateway.upstreams import AuthClient, BlogClient, CommentClient, UserClient

DESCRIPTION = """The RealWorld ("Conduit") API, with additive extensions: categories, drafts and publishing,
anonymous comments held for moderation, moderation for moderators, and `commentCount` on profiles.
Errors are `{"errors": {"body": ["..."]}}`."""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway; `settings` default to the environment."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        provider = app.state.tracer_provider
        upstreams = UpstreamClients(
            auth=AuthClient(settings=settings, tracer_provider=provider),
            users=UserClient(settings=settings, tracer_provider=provider),
            blog=BlogClient(settings=settings, tracer_provider=provider),
            comments=CommentClient(settings=settings, tracer_provider=provider),
            follows=Follows.from_settings(
                redis_url=settings.redis_url,
                ttl_seconds=settings.follows_cache_ttl_seconds,
                size=settings.follows_cache_size,
            ),
        )
        app.state.upstreams = upstreams
        app.state.token_validator = TokenValidator(
            upstreams.auth, ttl_seconds=settings.token_cache_ttl_seconds, size=settings.token_cache_size
        )
        app.state.rate_limiter = RateLimiter(settings)
        stop_metrics = serve_metrics(host=settings.listen_host, port=settings.metrics_port)
        try:
            yield
        finally:
            stop_metrics()
            await upstreams.aclose()

    # Its port is public: /metrics goes to a port of its own (GATEWAY_METRICS_PORT), for the operator's Prometheus.
    app = cast(
        EdgeApp,
        service_app(
            settings,
            max_body_bytes=settings.max_body_bytes,
            ready_checks={},
            expose_metrics=False,
            title="Conduit API (blog platform gateway)",
            version="1.1.0",
            description=DESCRIPTION,
            lifespan=lifespan,
            app_class=EdgeApp,
        ),
    )
    app.guard(trust_traceparent=settings.trust_traceparent)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Requested-With"],
        max_age=600,
    )
    if settings.trusted_proxies:  # outermost, so the access log and the rate limits see the client behind them
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    # Each router carries its whole prefix (`/api/...`), which its routes' paths hold (comm.routing). In order of
    # traffic, reads first: FastAPI tries the routes in turn, about 11K instructions for each one a request passes
    # (bench/instructions.py: the signed-in article read 2.04M -> 1.95M with the eight user routes behind it).
    add_routes(app, articles.router, comments.router, users.profiles, users.router, comments.moderation)
    document_security(app, {TOKEN_SCHEME: TOKEN})
    return app
