"""The auth service's internal API; only the gateway and other services call it, with an internal token."""

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from auth import service
from auth.passwords import Passwords
from auth.schemas import AuthOut, LoginIn, RegisterIn, UpdateIn, UserOut, ValidateIn
from auth.settings import AuthSettings
from auth.signing import TokenSigner
from comm.answers import JSONAnswer
from comm.appstate import app_state
from comm.callers import CurrentUserId
from comm.db import ReadPool, ReadSession, Session
from comm.openapi import requires
from comm.reads import read_as
from comm.tokens import SCHEME, CallerIdentity

router = APIRouter(prefix="/auth", tags=["auth"])
public = APIRouter(tags=["keys"])


Settings = Annotated[AuthSettings, Depends(app_state("settings", AuthSettings))]
PasswordHasher = Annotated[Passwords, Depends(app_state("passwords", Passwords))]
signer_of = app_state("signer", TokenSigner)
Signer = Annotated[TokenSigner, Depends(signer_of)]


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What validating a user token needs: the read pool and the signer, for a call from the gateway."""

    db: ReadPool
    signer: TokenSigner


_gateway_read = read_as(lambda identity: identity)


@requires([{SCHEME: []}])
async def token_check(request: Request) -> TokenCheck:
    """The caller checked (comm.tokens), then the pool and the signer, in one dependency (comm.reads says why)."""
    read = await _gateway_read(request)
    return TokenCheck(db=read.db, signer=await signer_of(request))


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(
    data: RegisterIn, session: Session, _: CallerIdentity, passwords: PasswordHasher, signer: Signer, settings: Settings
) -> AuthOut:
    return await service.register(session, data=data, passwords=passwords, signer=signer, settings=settings)


@router.post("/login")
async def login(
    data: LoginIn, session: Session, _: CallerIdentity, passwords: PasswordHasher, signer: Signer
) -> AuthOut:
    return await service.login(session, email=data.email, password=data.password, passwords=passwords, signer=signer)


@router.post("/validate", response_model=UserOut)
async def validate(data: ValidateIn, check: Annotated[TokenCheck, Depends(token_check)]) -> JSONAnswer:
    """The token's user, or 401 (`AuthServiceClient.validate_token` calls it)."""
    return JSONAnswer(await service.validate(check.db, token=data.token, signer=check.signer))


@router.get("/users/me")
async def me(session: ReadSession, user_id: CurrentUserId) -> UserOut:
    return await service.get_user(session, user_id=user_id)


@router.patch("/users/me")
async def update_me(
    data: UpdateIn,
    session: Session,
    user_id: CurrentUserId,
    passwords: PasswordHasher,
    signer: Signer,
    settings: Settings,
) -> AuthOut:
    return await service.update_user(
        session, user_id=user_id, data=data, passwords=passwords, signer=signer, settings=settings
    )


@router.post("/users/me/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(session: Session, user_id: CurrentUserId) -> None:
    """Revoke every token issued to the user so far."""
    await service.revoke_tokens(session, user_id=user_id)


@router.get("/users/{user_id}")
async def get_user(user_id: uuid.UUID, session: ReadSession, _: CallerIdentity) -> UserOut:
    return await service.get_user(session, user_id=user_id)


@public.get("/.well-known/jwks.json")
async def jwks(signer: Signer) -> dict[str, list[dict[str, str]]]:
    """The public key(s) user tokens are signed with."""
    return signer.jwks
