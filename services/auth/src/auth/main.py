"""The auth app: `create_app(settings=None)` builds it, the lifespan owns its resources."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth.passwords import Passwords
from auth.routes import public, router
from auth.settings import AuthSettings
from auth.signing import TokenSigner
from comm.bootstrap import bootstrap_app
from comm.db import create_engine, create_sessionmaker
from comm.events.relay import OutboxRelay
from comm.health import database_check


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    """The auth service (port 3001)."""
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.engine = engine
        relay = OutboxRelay(engine=engine, settings=settings)
        await relay.start()
        try:
            yield
        finally:
            await relay.stop()
            await engine.dispose()

    app = FastAPI(title="auth", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.passwords = Passwords(settings)
    app.state.signer = TokenSigner(settings)
    bootstrap_app(
        app,
        settings,
        max_body_bytes=settings.max_body_bytes,
        ready_checks={"database": lambda: database_check(app.state.engine)()},
    )
    app.include_router(router)
    app.include_router(public)
    return app
