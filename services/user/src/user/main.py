"""The user app: `create_app(settings=None)` builds it, the lifespan owns its resources."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from comm.bootstrap import service_app, start_worker
from comm.db import open_service_database
from comm.events.relay import OutboxRelay
from comm.routing import add_routes
from user.consumers import build_consumers
from user.routes import router
from user.settings import UserSettings


def create_app(settings: UserSettings | None = None) -> FastAPI:
    """The user service (port 3003)."""
    settings = settings or UserSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Stopped in this order (the reverse of their start): relay (profile.updated), consumers, engine.
        async with AsyncExitStack() as stack:
            engine = await open_service_database(stack, app, settings)
            app.state.consumers = build_consumers(settings, app.state.sessionmaker)
            for consumer in app.state.consumers:
                await start_worker(stack, app, consumer)  # the API serves while the broker is away
            # After the consumers: their queues are bound before this service publishes anything.
            relay = OutboxRelay(engine=engine, settings=settings)
            await start_worker(stack, app, relay)
            yield

    app = service_app(
        settings, max_body_bytes=settings.max_body_bytes, title="user", version="0.1.0", lifespan=lifespan
    )
    add_routes(app, router)
    return app
