"""A hot read's two needs, the read pool and what the caller's verified identity says, in one dependency.

    @router.get("/posts/{post_id}")
    async def get_post(post_id: uuid.UUID, read: Reader) -> JSONAnswer:
        post = await queries.get_post(read.db, viewer=read.caller, post_id=post_id)

FastAPI solves each dependency of a route on every request, whatever it does: blog's page of 20 counted 2.16M
instructions per request with the pool (comm.db.ReadDatabase) and the viewer (comm.tokens.from_identity) as two
dependencies, 2.09M with the pool taken from the app instead, and its post by slug 1.40M against 1.32M in one
(bench/instructions.py). Routes that write, or read through a Session, keep the separate dependencies.
"""

import uuid
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request

from comm.db import ReadPool, read_pool
from comm.openapi import requires
from comm.tokens import GATEWAY, SCHEME, Identity, from_identity

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """The app's read pool and `derive(identity)` of the verified caller (see `read_as`)."""

    db: ReadPool
    caller: T


def read_as(
    derive: Callable[[Identity], T], *, callers: Collection[str] = (GATEWAY,)
) -> Callable[[Request], Coroutine[Any, Any, Read[T]]]:
    """A dependency: the read pool (`app.state.read_pool`) and `derive` of the identity of a call from one of
    `callers`, with from_identity's answers (401 without a valid internal token, 403 from another service)."""
    identity = from_identity(derive, callers=callers)

    async def read(request: Request) -> Read[T]:
        return Read(db=await read_pool(request), caller=await identity(request))

    return requires([{SCHEME: []}])(read)


def viewer_of(identity: Identity) -> uuid.UUID | None:
    """Whom a read is for: the user the gateway's token names (their drafts, `favorited`, `following`), or None."""
    return identity.user_id


# The usual hot read: from the gateway, for the viewer its token names.
Reader = Annotated[Read[uuid.UUID | None], Depends(read_as(viewer_of))]
