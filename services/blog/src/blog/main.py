"""The blog app: `create_app(settings=None)` builds it, the lifespan owns its resources."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from blog.consumers import build_consumers
from blog.routes import router
from blog.settings import BlogSettings
from comm.bootstrap import service_app, start_worker
from comm.db import open_service_database
from comm.events.relay import OutboxRelay
from comm.routing import add_routes


def create_app(settings: BlogSettings | None = None) -> FastAPI:
    """The blog service (port 3002)."""
    settings = settings or BlogSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:  # closed in reverse: relay, consumers, then engine
            engine = await open_service_database(stack, app, settings)
            app.state.consumers = build_consumers(settings, app.state.sessionmaker)
            for consumer in app.state.consumers:
                await start_worker(stack, app, consumer)  # the API serves while the broker is away
            # After the consumers: their queues are bound before this service publishes anything.
            relay = OutboxRelay(engine=engine, settings=settings)
            await start_worker(stack, app, relay)
            yield

    app = service_app(
        settings, max_body_bytes=settings.max_body_bytes, title="blog", version="0.1.0", lifespan=lifespan
    )
    add_routes(app, router)
    return app
