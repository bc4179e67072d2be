"""The comment app: `create_app(settings=None)` builds it, the lifespan owns its resources."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from comm.bootstrap import service_app, start_worker
from comm.db import open_service_database
from comm.events.relay import OutboxRelay
from comm.http.clients import BlogServiceClient
from comm.routing import add_routes
from comment.consumers import authors, post_cleanup
from comment.routes import router
from comment.settings import CommentSettings


def create_app(settings: CommentSettings | None = None) -> FastAPI:
    """The comment service (port 3004)."""
    settings = settings or CommentSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Stopped in this order (the reverse of their start): relay, consumers, blog client, engine.
        async with AsyncExitStack() as stack:
            engine = await open_service_database(stack, app, settings)
            # One client per process: its breaker and connection pool are shared by every request.
            app.state.blog = await stack.enter_async_context(BlogServiceClient(settings=settings))
            app.state.post_cleanup = post_cleanup(settings, app.state.sessionmaker)
            await start_worker(stack, app, app.state.post_cleanup)
            app.state.authors = authors(settings, app.state.sessionmaker)
            await start_worker(stack, app, app.state.authors)
            # After the consumers: their queues are bound before this service publishes anything.
            relay = OutboxRelay(engine=engine, settings=settings)
            await start_worker(stack, app, relay)
            yield

    app = service_app(
        settings, max_body_bytes=settings.max_body_bytes, title="comment", version="0.1.0", lifespan=lifespan
    )
    add_routes(app, router)
    return app
