"""The gateway's resources, reached through `Annotated` dependencies (built in the lifespan).

They are `async def` although they never await: FastAPI runs a plain `def` dependency in a worker thread, and that
hop cost about a tenth of the gateway's CPU per article read (bench/gateway.py).
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from comm.appstate import app_state
from gateway.follows import Follows
from gateway.identity import TokenValidator
from gateway.ratelimit import RateLimiter
from gateway.upstreams import AuthClient, BlogClient, CommentClient, UserClient


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


Upstreams = Annotated[UpstreamClients, Depends(app_state("upstreams", UpstreamClients))]
Limiter = Annotated[RateLimiter, Depends(app_state("rate_limiter", RateLimiter))]
Validator = Annotated[TokenValidator, Depends(app_state("token_validator", TokenValidator))]
ClientAddress = Annotated[str, Depends(client_address)]
