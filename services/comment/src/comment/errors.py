"""The comment service's errors; each carries its status and renders as `{"errors": {...}}` (comm.errors)."""

from comm.errors import Forbidden, NotFound, Validation


class PostNotFound(NotFound):
    """Unknown, deleted, or someone else's draft (which blog shows to no one else): commenting needs a public post."""

    detail = "post not found"


class DraftNotCommentable(Forbidden):
    """The author's own draft: they see it, but it takes comments only once published (the rule's one place)."""

    detail = "a draft takes no comments until it is published"


class CommentNotFound(NotFound):
    detail = "comment not found"


class NotModerator(Forbidden):
    detail = "only moderators may do this"


class NotAuthorOrModerator(Forbidden):
    detail = "only the comment's author or a moderator may delete it"


class AuthorNameRequired(Validation):
    def __init__(self) -> None:
        super().__init__(errors={"author_name": ["is required for an anonymous comment"]})


class AuthorNameTaken(Validation):
    """An anonymous comment's name is a registered user's (compared by `models.name_key`): it would read as theirs."""

    def __init__(self) -> None:
        super().__init__(errors={"author_name": ["is a registered user's name: sign in to comment as them"]})
