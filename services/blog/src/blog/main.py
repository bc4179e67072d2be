"""The blog app: `create_app(settings=None)` builds it, the lifespan owns its resources."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from blog.routes import router
from blog.settings import BlogSettings
from comm.bootstrap import bootstrap_app
from comm.db import create_engine, create_sessionmaker
from comm.events.relay import OutboxRelay
from comm.health import database_check


def create_app(settings: BlogSettings | None = None) -> FastAPI:
    """The blog service (port 3002)."""
    settings = settings or BlogSettings()

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

    app = FastAPI(title="blog", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    bootstrap_app(
        app,
        settings,
        max_body_bytes=settings.max_body_bytes,
        ready_checks={"database": lambda: database_check(app.state.engine)()},
    )
    app.include_router(router)
    return app
