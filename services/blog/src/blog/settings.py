"""Blog settings: `BLOG_*` variables plus the shared ones of `CommSettings`."""

from pydantic_settings import SettingsConfigDict

from comm.settings import CommSettings


class BlogSettings(CommSettings):
    """Everything the blog service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="BLOG_", extra="ignore", populate_by_name=True)

    service_name: str = "blog"
    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/blog"
    # A post body may hold 100 000 characters; in UTF-8 JSON that is up to ~400 KB of CJK or emoji text, and a
    # feed request carries up to 10 000 author ids (~390 KB). Anything larger is refused before it is parsed.
    max_body_bytes: int = 1024 * 1024
    # Consuming queues are `<queue_prefix>.<concern>`; tests set a unique prefix so runs never share a queue.
    queue_prefix: str = "blog"

    listen_host: str = "127.0.0.1"
    listen_port: int = 3002
