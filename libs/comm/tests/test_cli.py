"""`python -m <service> serve`'s server: the garbage collector set for a long-running service, uvicorn's exit code."""

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from comm.cli import YOUNG_COLLECTION_THRESHOLD, FrozenHeapServer, serve


class Built:
    pass


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was: a served app freezes the heap and changes a threshold."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
async def test_the_heap_built_at_startup_is_frozen_and_young_collections_are_rarer() -> None:
    app = FastAPI()
    built = Built()  # something startup made, which lives as long as the app
    assert gc.is_tracked(built)

    @app.get("/collector")
    async def state() -> dict[str, int]:
        tracked = any(o is built for o in gc.get_objects())  # the collector's generations, not the frozen heap
        return {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0], "tracked": int(tracked)}

    app.state.built = [built]
    assert gc.get_freeze_count() == 0
    server = FrozenHeapServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            answer = (await client.get(f"http://127.0.0.1:{port}/collector")).json()
    finally:
        server.should_exit = True
        await task
    assert answer["frozen"] > 10_000  # the modules, the app and its routes at least
    assert answer["young"] == YOUNG_COLLECTION_THRESHOLD
    assert answer["tracked"] == 0, "what startup built is out of the collector's generations"


@asynccontextmanager
async def failing(app: FastAPI) -> AsyncIterator[None]:
    raise RuntimeError("the lifespan could not open its resources")
    yield


@pytest.mark.usefixtures("collector")
def test_an_app_that_does_not_start_exits_with_uvicorns_startup_failure_code() -> None:
    config = uvicorn.Config(FastAPI(lifespan=failing), host="127.0.0.1", port=0, log_level="critical", lifespan="on")
    with pytest.raises(SystemExit) as exited:
        serve(config)
    assert exited.value.code == 3
