"""What every app's request path must not do, checked on the apps as built (no server needed).

A plain `def` endpoint or dependency makes FastAPI run it in a worker thread: a thread hand-off per request (a
queue, a condition variable, a wake-up of another thread and back) that `make bench` found costing a tenth of a
service's read when one dependency of the read path was plain. Everything on the request path is `async def`.
"""

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from comm.testing import SERVICES

# The Prometheus scrape renders the whole registry: CPU-bound work that belongs off the loop, once per scrape.
OFF_THE_REQUEST_PATH = {"/metrics"}


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's included router, not flattened into the app's routes
            yield from _api_routes(route.original_router.routes)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _runs_on_the_loop(call: Any) -> bool:
    function = call if inspect.isroutine(call) else type(call).__call__  # a callable instance: its __call__
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


@pytest.mark.parametrize("name", SERVICES)
def test_every_endpoint_and_dependency_runs_on_the_event_loop(name: str) -> None:
    app = importlib.import_module(f"{name}.main").create_app()
    routes = [route for route in _api_routes(app.routes) if route.path not in OFF_THE_REQUEST_PATH]
    assert len(routes) > 3
    threaded = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in (route.endpoint, *_calls(route.dependant))
        if not _runs_on_the_loop(call)
    }
    assert not threaded, f"plain `def` on {name}'s request path (run in a thread per request): {sorted(threaded)}"


# The gateway's public reads, in the order of traffic `make bench` measures: FastAPI tries an app's routes in turn
# (about 11K instructions for each one a request passes), so these come before the user and profile routes.
GATEWAY_HOT_READS = ("/api/articles", "/api/articles/{slug}", "/api/articles/{slug}/comments")


def test_the_gateways_hot_reads_are_matched_before_its_user_and_profile_routes() -> None:
    app = importlib.import_module("gateway.main").create_app()
    order = [(route.path, method) for route in _api_routes(app.routes) for method in sorted(route.methods)]
    hot = [order.index((path, "GET")) for path in GATEWAY_HOT_READS]
    first_user_route = min(
        index for index, (path, _) in enumerate(order) if path.startswith(("/api/user", "/api/profiles"))
    )
    assert max(hot) < first_user_route, f"a hot read comes after a user or profile route: {order}"
    assert order.index(("/api/articles/{slug}", "GET")) < 6, order
