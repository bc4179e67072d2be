"""The auth app: `create_app(settings=None)` builds it, the lifespan owns its resources."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from auth.passwords import Passwords
from auth.routes import public, router
from auth.settings import AuthSettings
from auth.signing import TokenSigner
from comm.bootstrap import service_app, start_worker
from comm.db import open_service_database
from comm.events.relay import OutboxRelay
from comm.routing import add_routes


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    """The auth service (port 3001)."""
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:  # closed in reverse: relay, then engine
            engine = await open_service_database(stack, app, settings)
            relay = OutboxRelay(engine=engine, settings=settings)
            await start_worker(stack, app, relay)
            yield

    app = service_app(
        settings, max_body_bytes=settings.max_body_bytes, title="auth", version="0.1.0", lifespan=lifespan
    )
    app.state.passwords = Passwords(settings)
    app.state.signer = TokenSigner(settings)
    add_routes(app, router, public)
    return app
