"""The auth service's internal API; only the gateway and other services call it, with an internal token."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from auth import service
from auth.passwords import Passwords
from auth.schemas import AuthOut, LoginIn, RegisterIn, UpdateIn, UserOut, ValidateIn
from auth.settings import AuthSettings
from auth.signing import TokenSigner
from comm.appstate import app_state
from comm.callers import CurrentUserId
from comm.db import ReadDatabase, ReadSession, Session
from comm.tokens import CallerIdentity

router = APIRouter(prefix="/auth", tags=["auth"])
public = APIRouter(tags=["keys"])


Settings = Annotated[AuthSettings, Depends(app_state("settings", AuthSettings))]
PasswordHasher = Annotated[Passwords, Depends(app_state("passwords", Passwords))]
Signer = Annotated[TokenSigner, Depends(app_state("signer", TokenSigner))]


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


@router.post("/validate")
async def validate(data: ValidateIn, db: ReadDatabase, _: CallerIdentity, signer: Signer) -> UserOut:
    """The token's user, or 401 (`AuthServiceClient.validate_token` calls it)."""
    return await service.validate(db, token=data.token, signer=signer)


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
