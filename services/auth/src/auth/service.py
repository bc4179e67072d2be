"""The auth use cases: one transaction each, the outbox row in the same transaction as the write."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.errors import InvalidCredentials, InvalidUserToken, PasswordRejected, Taken, UnknownRole, UserNotFound
from auth.models import User
from auth.passwords import Passwords
from auth.schemas import AuthOut, RegisterIn, UpdateIn, UserOut
from auth.settings import AuthSettings
from auth.signing import InvalidToken, TokenSigner
from comm.answers import JSONObject
from comm.callers import ROLES
from comm.db import ReadPool, Statement, violated_constraint
from comm.events.models import UserCreated, UserUpdated
from comm.events.outbox import add_event


def check_password_policy(password: str, *, settings: AuthSettings) -> None:
    """Length within the configured bounds; nothing is truncated silently."""
    if not settings.password_min_length <= len(password) <= settings.password_max_length:
        raise PasswordRejected(settings.password_min_length, settings.password_max_length)


async def register(
    session: AsyncSession, *, data: RegisterIn, passwords: Passwords, signer: TokenSigner, settings: AuthSettings
) -> AuthOut:
    """Create the credentials and publish `user.created` in the same transaction."""
    check_password_policy(data.password, settings=settings)
    email = data.email.lower()
    password_hash = await passwords.hash(data.password)
    async with session.begin():
        await _ensure_free(session, username=data.username, email=email)
        user = User(
            id=uuid.uuid4(),
            username=data.username,
            email=email,
            password_hash=password_hash,
            roles=[],
            identity_version=1,
        )
        session.add(user)
        await _flush_unique(session)
        created = UserCreated(
            user_id=user.id, username=user.username, email=email, timestamp=datetime.now(UTC), version=1
        )
        await add_event(session, created)
    return _with_token(user, signer)


async def login(
    session: AsyncSession, *, email: str, password: str, passwords: Passwords, signer: TokenSigner
) -> AuthOut:
    """Unknown email and wrong password fail alike, in status, body and time; a stale hash is upgraded."""
    async with session.begin():
        user = await session.scalar(select(User).where(User.email == email.lower()))
        ok, new_hash = await passwords.verify(password, user.password_hash if user else None)
        if not ok or user is None:
            raise InvalidCredentials()
        if new_hash is not None:
            user.password_hash = new_hash
    return _with_token(user, signer)


# Built once with bind parameters: the gateway validates a signed-in user's token through it.
_VALID_USER = Statement(
    select(User.id, User.username, User.email, User.roles).where(
        User.id == bindparam("user_id"), User.token_version == bindparam("version")
    )
)


async def validate(db: ReadPool, *, token: str, signer: TokenSigner) -> JSONObject:
    """The user a token belongs to, if the token is genuine, unexpired and not revoked; plain data in UserOut's
    shape, written once (comm.answers)."""
    try:
        claims = signer.verify(token)
    except InvalidToken as exc:
        raise InvalidUserToken() from exc
    user = await _VALID_USER.fetchrow(db, user_id=claims.user_id, version=claims.version)
    if user is None:  # gone, or the token is older than the last password change or logout-all
        raise InvalidUserToken()
    return {"id": str(user["id"]), "username": user["username"], "email": user["email"], "roles": user["roles"]}


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> UserOut:
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return UserOut.model_validate(user)


async def update_user(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    data: UpdateIn,
    passwords: Passwords,
    signer: TokenSigner,
    settings: AuthSettings,
) -> AuthOut:
    """Change username, email or password; a new password revokes every earlier token."""
    new_hash = None
    if data.password is not None:
        check_password_policy(data.password, settings=settings)
        new_hash = await passwords.hash(data.password)
    async with session.begin():
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise UserNotFound()
        username = data.username if data.username is not None else user.username
        email = data.email.lower() if data.email is not None else user.email
        renamed = (username, email) != (user.username, user.email)
        if renamed:
            await _ensure_free(session, username=username, email=email, except_id=user.id)
            user.username, user.email = username, email
            user.identity_version += 1
        if new_hash is not None:
            user.password_hash = new_hash
            user.token_version += 1
        await _flush_unique(session)
        if renamed:
            renamed_event = UserUpdated(
                user_id=user.id,
                username=username,
                email=email,
                timestamp=datetime.now(UTC),
                version=user.identity_version,
            )
            await add_event(session, renamed_event)
    return _with_token(user, signer)


async def revoke_tokens(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Log out everywhere: every token issued so far stops validating."""
    async with session.begin():
        result = await session.execute(
            update(User).where(User.id == user_id).values(token_version=User.token_version + 1).returning(User.id)
        )
        if result.scalar_one_or_none() is None:
            raise UserNotFound()


async def grant_role(session: AsyncSession, *, username: str, role: str) -> UserOut:
    """Give a user a role (`python -m auth grant-role alice moderator`)."""
    if role not in ROLES:
        raise UnknownRole(role)
    async with session.begin():
        user = await session.scalar(select(User).where(User.username == username).with_for_update())
        if user is None:
            raise UserNotFound()
        if role not in user.roles:
            user.roles = [*user.roles, role]
    return UserOut.model_validate(user)


async def _ensure_free(session: AsyncSession, *, username: str, email: str, except_id: uuid.UUID | None = None) -> None:
    """A friendly field-keyed error for the common case; the unique constraints settle races."""
    query = select(User.username, User.email).where((User.username == username) | (User.email == email))
    if except_id is not None:
        query = query.where(User.id != except_id)
    rows = await session.execute(query)
    fields = {
        field
        for row in rows
        for field, taken in (("username", row.username == username), ("email", row.email == email))
        if taken
    }
    if fields:
        raise Taken(sorted(fields))


async def _flush_unique(session: AsyncSession) -> None:
    """Flush, turning a unique violation from a concurrent request into the same 422 as the pre-check."""
    try:
        await session.flush()
    except IntegrityError as exc:
        constraint = violated_constraint(exc)
        taken = [field for field in ("username", "email") if constraint == f"uq_users_{field}"]
        if not taken:
            raise
        raise Taken(taken) from exc


def _with_token(user: User, signer: TokenSigner) -> AuthOut:
    token = signer.mint(user_id=user.id, version=user.token_version)
    return AuthOut(id=user.id, username=user.username, email=user.email, roles=list(user.roles), token=token)
