"""The comment service's errors; each carries its status and renders as `{"errors": {...}}` (comm.errors)."""

from comm.errors import Forbidden, NotFound, Validation


class PostNotFound(NotFound):
    """Unknown, draft or deleted: commenting needs a public post."""

    detail = "post not found"


class CommentNotFound(NotFound):
    detail = "comment not found"


class NotModerator(Forbidden):
    detail = "only moderators may do this"


class NotAuthorOrModerator(Forbidden):
    detail = "only the comment's author or a moderator may delete it"


class AuthorNameRequired(Validation):
    def __init__(self) -> None:
        super().__init__(errors={"author_name": ["is required for an anonymous comment"]})
