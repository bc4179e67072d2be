"""Blog's errors; each carries its status and renders as `{"errors": {...}}` (comm.errors)."""

from comm.errors import Conflict, Forbidden, NotFound, Validation


class PostNotFound(NotFound):
    # Also what someone else's draft answers: a draft's existence is not disclosed.
    detail = "post not found"


class CategoryNotFound(NotFound):
    detail = "category not found"


class NotAuthor(Forbidden):
    detail = "only the author may change this post"


class AdminOnly(Forbidden):
    detail = "only an admin may manage categories"


class UnknownCategory(Validation):
    def __init__(self, slug: str) -> None:
        super().__init__(errors={"category": [f"no category {slug!r}"]})


class Taken(Conflict):
    """A category's slug or name already belongs to another category."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(errors={field: ["has already been taken"] for field in fields})


class NoFreeSlug(Conflict):
    """Every slug tried was taken (a handful of random suffixes in a row: practically never)."""

    def __init__(self) -> None:
        super().__init__(errors={"title": ["must be unique"]})
