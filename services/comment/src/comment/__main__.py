"""`python -m comment migrate | serve [--migrate]`."""

from comm.cli import main
from comment.settings import CommentSettings

if __name__ == "__main__":
    main(package="comment", settings=CommentSettings)
