"""What a service's routes require of their caller, in one place: a signed-in user, a role.

The caller's identity comes verified from its internal token (comm.tokens.from_identity); these say what a route
needs of it, with the same answer in every service: 401 "this call needs a signed-in user" without a user.
"""

import uuid
from typing import Annotated

from fastapi import Depends

from comm.errors import Unauthorized
from comm.tokens import Identity, from_identity

ADMIN = "admin"
MODERATOR = "moderator"
ROLES = frozenset({MODERATOR, ADMIN})  # every role auth grants (`python -m auth grant-role`)


class SignInRequired(Unauthorized):
    detail = "this call needs a signed-in user"


def is_moderator(identity: Identity) -> bool:
    return MODERATOR in identity.roles or is_admin(identity)  # an admin may do what a moderator does


def is_admin(identity: Identity) -> bool:
    return ADMIN in identity.roles


def signed_in(identity: Identity) -> Identity:
    """The caller's identity, which names a user; 401 otherwise."""
    if identity.user_id is None:
        raise SignInRequired()
    return identity


def current_user_id(identity: Identity) -> uuid.UUID:
    """The signed-in user's id; 401 without one."""
    user_id = signed_in(identity).user_id
    assert user_id is not None  # signed_in saw to it
    return user_id


SignedIn = Annotated[Identity, Depends(from_identity(signed_in))]
CurrentUserId = Annotated[uuid.UUID, Depends(from_identity(current_user_id))]
