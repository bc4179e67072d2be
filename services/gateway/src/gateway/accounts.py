"""Users and profiles: auth owns credentials, the user service owns profiles; the gateway joins them."""

import asyncio
import logging
import time

from comm.answers import JSONObject
from comm.errors import UpstreamError
from comm.http.clients import User as ValidatedUser
from comm.tokens import Identity
from gateway.deps import Upstreams
from gateway.identity import ANONYMOUS, TokenValidator, Viewer, identity_of
from gateway.schemas import LoginUser, NewUser, UpdateUser, User
from gateway.upstreams import AuthUser, ProfileView

log = logging.getLogger(__name__)
RENAME_WAIT_SECONDS = 2.0


def to_profile(view: ProfileView) -> JSONObject:
    """A `Profile` as written (comm.answers)."""
    return {
        "username": view.username,
        "bio": view.bio,
        "image": view.image,
        "following": view.following,
        "commentCount": view.comment_count,
    }


async def own_profile(upstreams: Upstreams, *, viewer: Viewer) -> ProfileView:
    """The viewer's profile; if the user service cannot answer, what auth said of them, so a write that already
    succeeded (an article, a comment) is not reported as failed."""
    try:
        return await upstreams.users.by_id(viewer.user.id, identity=viewer.identity)
    except UpstreamError as exc:
        log.warning("author profile unavailable (%s): answering with the viewer's own name", type(exc).__name__)
        return ProfileView(user_id=viewer.user.id, username=viewer.user.username, bio=None, image=None)


def _user(account: AuthUser | ValidatedUser, *, token: str, profile: ProfileView | None) -> User:
    return User(
        email=account.email,
        token=token,
        username=account.username,
        bio=profile.bio if profile else None,
        image=profile.image if profile else None,
        roles=list(account.roles),
    )


def _identity(user: AuthUser) -> Identity:
    return Identity(user_id=user.id, roles=frozenset(user.roles))


async def register(upstreams: Upstreams, *, data: NewUser) -> User:
    """Create the account, then the profile at once (read-your-writes), not waiting for `user.created`."""
    account = await upstreams.auth.register(
        username=data.username, email=data.email, password=data.password, identity=ANONYMOUS
    )
    try:
        profile = await upstreams.users.ensure(
            user_id=account.id, username=account.username, identity=_identity(account)
        )
    except UpstreamError as exc:  # the account exists; its profile follows from the event
        log.warning("profile of new user %s not created now (%s); the event will", account.id, exc)
        profile = None
    return _user(account, token=account.token, profile=profile)


async def login(upstreams: Upstreams, *, data: LoginUser) -> User:
    account = await upstreams.auth.login(email=data.email, password=data.password, identity=ANONYMOUS)
    profile = await upstreams.users.by_id(account.id, identity=_identity(account))
    return _user(account, token=account.token, profile=profile)


async def current_user(upstreams: Upstreams, *, viewer: Viewer) -> User:
    profile = await upstreams.users.by_id(viewer.user.id, identity=viewer.identity)
    return _user(viewer.user, token=viewer.token, profile=profile)


async def update_user(upstreams: Upstreams, *, viewer: Viewer, data: UpdateUser, validator: TokenValidator) -> User:
    """Credentials change in auth, bio and image in the user service; a rename is awaited briefly (see below)."""
    credentials = data.model_dump(include={"email", "username", "password"}, exclude_unset=True, exclude_none=True)
    profile_changes = data.model_dump(include={"bio", "image"}, exclude_unset=True)
    account: AuthUser | ValidatedUser = viewer.user
    token = viewer.token
    if credentials:
        account = await upstreams.auth.update_me(credentials, identity=viewer.identity)
        token = account.token
        validator.forget(viewer.token)
    if profile_changes:
        profile = await upstreams.users.update_me(profile_changes, identity=viewer.identity)
    else:
        profile = await upstreams.users.by_id(viewer.user.id, identity=viewer.identity)
    if isinstance(account, AuthUser) and profile.username != account.username:
        profile = await _await_rename(upstreams, account=account, profile=profile)
    return _user(account, token=token, profile=profile)


async def _await_rename(upstreams: Upstreams, *, account: AuthUser, profile: ProfileView) -> ProfileView:
    """Profiles follow a rename through `user.updated`; wait for it a moment so the next read finds the new name."""
    deadline = time.monotonic() + RENAME_WAIT_SECONDS
    while profile.username != account.username and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        profile = await upstreams.users.by_id(account.id, identity=_identity(account))
    return profile


async def get_profile(upstreams: Upstreams, *, username: str, viewer: Viewer | None) -> JSONObject:
    return to_profile(await upstreams.users.by_username(username, identity=identity_of(viewer)))


async def follow(upstreams: Upstreams, *, username: str, viewer: Viewer, follow: bool) -> JSONObject:
    """The set the gateway keeps of whom the viewer follows is dropped before the answer leaves, whatever it is (a
    timeout may hide a follow that was stored), so the viewer's next read shows the change (gateway.follows)."""
    try:
        return to_profile(await upstreams.users.follow(username, follow=follow, identity=viewer.identity))
    finally:
        await upstreams.follows.changed(viewer.user.id)
