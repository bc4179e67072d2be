"""A hot read's two needs, the read pool and what the caller's verified identity says, in one dependency.

    @router.get("/posts/{post_id}")
    async def get_post(post_id: uuid.UUID, read: Reader) -> JSONAnswer:
        post = await queries.get_post(read.db, viewer=read.caller, post_id=post_id)

FastAPI solves each dependency of a route on every request, whatever it does: blog's page of 20 counted 2.16M
instructions per request with the pool (comm.db.ReadDatabase) and the viewer (comm.tokens.from_identity) as two
dependencies, 2.09M with the pool taken from the app instead, and its post by slug 1.40M against 1.32M in one
(bench/instructions.py). A read that takes a query string takes it in the same dependency (`read_with_query`).
Routes that write, or read through a Session, keep the separate dependencies.
"""

import uuid
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from comm.db import ReadPool, read_pool
from comm.openapi import reads_query, requires
from comm.querystring import query_model
from comm.tokens import GATEWAY, SCHEME, Identity, from_identity

T = TypeVar("T")
Q = TypeVar("Q", bound=BaseModel)


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


@dataclass(frozen=True, slots=True)
class QueryRead(Read[T], Generic[T, Q]):
    """A Read and the request's query string as its model (comm.querystring)."""

    query: Q


def read_with_query(
    derive: Callable[[Identity], T], model: type[Q], *, callers: Collection[str] = (GATEWAY,)
) -> Callable[[Request], Coroutine[Any, Any, QueryRead[T, Q]]]:
    """`read_as` and `query_model(model)` in one dependency: the caller is checked first (401/403), then the query
    (422). A level of dependencies fewer: blog's page of 20 counted 1.55M instructions per request with the two, 1.49M
    in one (bench/instructions.py)."""
    read_only, parse = read_as(derive, callers=callers), query_model(model)

    async def read(request: Request) -> QueryRead[T, Q]:
        found = await read_only(request)
        return QueryRead(db=found.db, caller=found.caller, query=await parse(request))

    return reads_query(model)(requires([{SCHEME: []}])(read))


def viewer_of(identity: Identity) -> uuid.UUID | None:
    """Whom a read is for: the user the gateway's token names (their drafts, `favorited`, `following`), or None."""
    return identity.user_id


# The usual hot read: from the gateway, for the viewer its token names.
Reader = Annotated[Read[uuid.UUID | None], Depends(read_as(viewer_of))]
