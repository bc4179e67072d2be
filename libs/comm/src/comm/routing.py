"""A service's routes on its app: `add_routes(app, router, ...)` in place of `app.include_router(router)`.

FastAPI 0.165 keeps an included router as a branch of the app's router: each request walks the app's own routes
(the docs, `/metrics`), then matches the branch's routes once to pick it and again to run it, saving and restoring
scope keys around each route tried, and sums the branch's route versions on the way. Routes on the app's own
router are tried once, in order. Measured on blog's read by slug, in process, by callgrind (instructions are
repeatable where seconds are not): 12 % of the request's instructions went to that walk (README, "What a read
costs"). So the routes a service declares on its `APIRouter` are put on the app's router as they are, first, and
the probes, the scrape and the docs after them.

A route made by an `APIRouter` already carries everything `include_router` would add from that router: the
router's prefix in its path, its tags, dependencies and responses. What cannot be had this way: arguments given to
`include_router` itself (a prefix, tags, dependencies at inclusion), which no caller passes, and
`app.dependency_overrides`, which a route's handler takes from its router when it is built; the suites here test
against real databases and brokers and override nothing.
"""

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, *routers: APIRouter, last: bool = False) -> None:
    """The routes of `routers`, in order, at the head of the app's router (ahead of those added before), or at its
    end with `last` (the probes: whatever a service adds later goes ahead of them)."""
    routes = [route for router in routers for route in router.routes]
    if last:
        app.router.routes.extend(routes)
    else:
        app.router.routes[0:0] = routes
