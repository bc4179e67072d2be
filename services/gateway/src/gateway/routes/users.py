"""`/api/users`, `/api/user`, `/api/profiles`: accounts and profiles."""

from typing import Annotated

from fastapi import APIRouter, Path, status

from comm.answers import JSONAnswer
from gateway import accounts
from gateway.deps import ClientAddress, Limiter, Reader, Upstreams, Validator
from gateway.identity import CurrentViewer
from gateway.schemas import (
    USERNAME,
    LoginUserRequest,
    NewUserRequest,
    ProfileResponse,
    UpdateUserRequest,
    UserResponse,
    errors,
)

router = APIRouter(prefix="/api", tags=["User and Authentication"])
profiles = APIRouter(prefix="/api/profiles/{username}", tags=["Profile"])
UsernamePath = Annotated[str, Path(pattern=USERNAME)]


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=errors(413, 429))
async def register(
    request: NewUserRequest, upstreams: Upstreams, limiter: Limiter, client: ClientAddress
) -> UserResponse:
    """Register a new user."""
    await limiter.hit(limiter.limits.register, "register", client)
    return UserResponse(user=await accounts.register(upstreams, data=request.user))


@router.post("/users/login", responses=errors(401, 413, 429))
async def login(
    request: LoginUserRequest, upstreams: Upstreams, limiter: Limiter, client: ClientAddress
) -> UserResponse:
    """Log in; failed attempts are rate limited per address and email, per address and per account."""
    async with limiter.failed_logins(address=client, email=request.user.email.lower()):
        return UserResponse(user=await accounts.login(upstreams, data=request.user))


@router.get("/user", responses=errors(401))
async def current_user(viewer: CurrentViewer, upstreams: Upstreams) -> UserResponse:
    """The current user, with the token it signed in with."""
    return UserResponse(user=await accounts.current_user(upstreams, viewer=viewer))


@router.put("/user", responses=errors(401, 413, 429))
async def update_user(
    request: UpdateUserRequest, viewer: CurrentViewer, upstreams: Upstreams, validator: Validator, limiter: Limiter
) -> UserResponse:
    """Update email, username, password (which revokes earlier tokens), bio or image; rate limited per user."""
    await limiter.hit(limiter.limits.update_user, "update-user", str(viewer.user.id))
    return UserResponse(
        user=await accounts.update_user(upstreams, viewer=viewer, data=request.user, validator=validator)
    )


@router.post("/user/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
async def logout_all(viewer: CurrentViewer, upstreams: Upstreams, validator: Validator) -> None:
    """Extension: every token issued to the current user so far stops working (this gateway's cached answer for
    this token at once, other replicas' within GATEWAY_TOKEN_CACHE_TTL_SECONDS)."""
    await upstreams.auth.logout_all(identity=viewer.identity)
    validator.forget(viewer.token)


@profiles.get("", response_model=ProfileResponse, responses=errors(401, 404))
async def get_profile(username: UsernamePath, read: Reader) -> JSONAnswer:
    return JSONAnswer({"profile": await accounts.get_profile(read.upstreams, username=username, viewer=read.viewer)})


@profiles.post("/follow", response_model=ProfileResponse, responses=errors(401, 403, 404))
async def follow(username: UsernamePath, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:
    """Follow a user (a JSON body, if any, is ignored)."""
    return JSONAnswer({"profile": await accounts.follow(upstreams, username=username, viewer=viewer, follow=True)})


@profiles.delete("/follow", response_model=ProfileResponse, responses=errors(401, 403, 404))
async def unfollow(username: UsernamePath, viewer: CurrentViewer, upstreams: Upstreams) -> JSONAnswer:
    return JSONAnswer({"profile": await accounts.follow(upstreams, username=username, viewer=viewer, follow=False)})
