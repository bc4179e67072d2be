"""Request and response bodies of the auth service's internal API."""

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

Username = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# Length limits are checked against the settings in the service (they are configurable).
Password = Annotated[str, Field(min_length=1, max_length=4096)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    username: Username
    email: EmailStr
    password: Password


class LoginIn(Strict):
    email: EmailStr
    password: Password


class ValidateIn(Strict):
    token: Annotated[str, Field(max_length=4096)]


class UpdateIn(Strict):
    username: Username | None = None
    email: EmailStr | None = None
    password: Password | None = None


class UserOut(BaseModel):
    """A user as other services see it (the seed's `validate_token`)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str
    roles: list[str]


class AuthOut(UserOut):
    """A user with a fresh token (register, login, update)."""

    token: str
