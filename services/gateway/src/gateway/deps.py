"""The gateway's resources, reached through `Annotated` dependencies (built in the lifespan).

They are `async def` although they never await: FastAPI runs a plain `def` dependency in a worker thread, and that
hop cost about a tenth of the gateway's CPU per article read (bench/gateway.py).
"""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from comm.appstate import app_state
from comm.openapi import reads_query, requires
from comm.querystring import query_model
from gateway.follows import Follows
from gateway.identity import TOKEN_SCHEME, TokenValidator, Viewer, optional_viewer
from gateway.ratelimit import RateLimiter
from gateway.upstreams import AuthClient, BlogClient, CommentClient, UserClient

Q = TypeVar("Q", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class UpstreamClients:
    """One long-lived client per downstream service, and whom the viewers follow as the user service told
    (gateway.follows): `upstreams: Upstreams` in the routes and the views they call."""

    auth: AuthClient
    users: UserClient
    blog: BlogClient
    comments: CommentClient
    follows: Follows

    async def aclose(self) -> None:
        for client in (self.auth, self.users, self.blog, self.comments, self.follows):
            await client.aclose()


async def client_address(request: Request) -> str:
    """The client's address, as the rate limits key it: behind GATEWAY_TRUSTED_PROXIES, the one they forward."""
    return request.client.host if request.client else "unknown"


upstreams_of = app_state("upstreams", UpstreamClients)  # the app's UpstreamClients, kept in the lifespan
Upstreams = Annotated[UpstreamClients, Depends(upstreams_of)]
Limiter = Annotated[RateLimiter, Depends(app_state("rate_limiter", RateLimiter))]
Validator = Annotated[TokenValidator, Depends(app_state("token_validator", TokenValidator))]
ClientAddress = Annotated[str, Depends(client_address)]


@dataclass(frozen=True, slots=True)
class Read:
    """A public read's two needs, the upstreams and the viewer (None without a token), in one dependency."""

    upstreams: UpstreamClients
    viewer: Viewer | None


@requires([{TOKEN_SCHEME: []}, {}])  # `{}`: or none, as optional_viewer
async def read_for_viewer(request: Request) -> Read:
    """FastAPI solves each dependency of a route on every request, about 69K instructions each here: the article
    read counted 1.79M instructions per request with `OptionalViewer` and `Upstreams`, 1.73M with this one
    (bench/instructions.py). The same move as the services' hot reads (comm.reads); writes keep the two."""
    return Read(upstreams=await upstreams_of(request), viewer=await optional_viewer(request))


Reader = Annotated[Read, Depends(read_for_viewer)]


@dataclass(frozen=True, slots=True)
class QueryRead(Read, Generic[Q]):
    """A public read's needs and its query string as its model (comm.querystring)."""

    query: Q


def read_with_query(model: type[Q]) -> Callable[[Request], Coroutine[Any, Any, QueryRead[Q]]]:
    """`read_for_viewer` and `query_model(model)` in one dependency, as comm.reads.read_with_query: the viewer
    first (401 for a bad token), then the query (422)."""
    parse = query_model(model)

    async def read(request: Request) -> QueryRead[Q]:
        found = await read_for_viewer(request)
        return QueryRead(upstreams=found.upstreams, viewer=found.viewer, query=await parse(request))

    return reads_query(model)(requires([{TOKEN_SCHEME: []}, {}])(read))
