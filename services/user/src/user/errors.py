"""The user service's errors; each carries its status and renders as `{"errors": {...}}` (comm.errors)."""

from comm.errors import Forbidden, NotFound, Validation


class ProfileNotFound(NotFound):
    detail = "profile not found"


class NotYourProfile(Forbidden):
    detail = "only the user themselves may create their profile"


class CannotFollowYourself(Forbidden):
    # 403, not 422: the request is well formed, following oneself is simply not allowed.
    detail = "you cannot follow yourself"


class TooManyLookups(Validation):
    def __init__(self, limit: int) -> None:
        super().__init__(errors={"body": [f"at most {limit} ids and usernames per call"]})


class InvalidLookup(Validation):
    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(errors={field: [f"{value[:80]!r} {reason}"]})
