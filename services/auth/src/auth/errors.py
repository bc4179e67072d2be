"""Auth's errors; each carries its status and renders as `{"errors": {...}}` (comm.errors)."""

from comm.errors import Conflict, NotFound, Unauthorized, Validation


class InvalidCredentials(Unauthorized):
    # One message for an unknown email and a wrong password: nothing tells which one it was.
    detail = "email or password is invalid"


class InvalidUserToken(Unauthorized):
    detail = "token is invalid, expired or revoked"


class UserNotFound(NotFound):
    detail = "user not found"


class Taken(Conflict):
    """Username or email already belongs to another user (RealWorld: 422 "has already been taken")."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(errors={field: ["has already been taken"] for field in fields})


class PasswordRejected(Validation):
    def __init__(self, minimum: int, maximum: int) -> None:
        super().__init__(errors={"password": [f"must be between {minimum} and {maximum} characters"]})


class UnknownRole(Validation):
    def __init__(self, role: str) -> None:
        super().__init__(errors={"role": [f"unknown role {role!r}"]})
