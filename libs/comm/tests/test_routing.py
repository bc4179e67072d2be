"""comm.routing.add_routes: a service's routes on the app's own router, ahead of the probes and docs, answering as
an included router's would (prefix, tags, route on the scope)."""

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute

from comm.health import add_health_routes
from comm.routing import add_routes

posts = APIRouter(prefix="/posts", tags=["posts"])
tags = APIRouter(tags=["tags"])


@posts.get("/{slug}")
async def post(slug: str, request: Request) -> dict[str, str]:
    return {"slug": slug, "route": request.scope["route"].path}


@tags.get("/tags")
async def tag_list() -> list[str]:
    return ["a"]


def _app() -> FastAPI:
    app = FastAPI()
    add_health_routes(app, checks={})
    add_routes(app, posts, tags)
    return app


def test_the_routes_come_first_in_order_as_the_routers_declared_them() -> None:
    routes = _app().router.routes
    assert [route.path for route in routes[:2] if isinstance(route, APIRoute)] == ["/posts/{slug}", "/tags"]
    assert routes[0] is posts.routes[0]  # the route itself: matched once, not through a branch


async def test_they_answer_with_their_prefix_tags_and_route_as_included_ones_do() -> None:
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://blog") as client:
        assert (await client.get("/posts/hello")).json() == {"slug": "hello", "route": "/posts/{slug}"}
        assert (await client.get("/tags")).json() == ["a"]
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/nowhere")).status_code == 404
    assert app.openapi()["paths"]["/posts/{slug}"]["get"]["tags"] == ["posts"]
