"""Comment settings: `COMMENT_*` variables plus the shared ones of `CommSettings`."""

from pydantic_settings import SettingsConfigDict

from comm.authors import authors_queue
from comm.events.broker import queue_name
from comm.settings import CommSettings


class CommentSettings(CommSettings):
    """Everything the comment service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="COMMENT_", extra="ignore", populate_by_name=True)

    service_name: str = "comment"
    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/comment"
    max_body_bytes: int = 64 * 1024
    # Consuming queues are `<queue_prefix>.<concern>`; tests set a unique prefix so runs never share a queue.
    queue_prefix: str = "comment"

    listen_host: str = "127.0.0.1"
    listen_port: int = 3004

    @property
    def post_cleanup_queue(self) -> str:
        """The queue whose handler deletes a deleted post's comments."""
        return queue_name(self.queue_prefix, "post-cleanup")

    @property
    def authors_queue(self) -> str:
        """The queue `profile.updated` keeps the authors' public profiles from."""
        return authors_queue(self.queue_prefix)
