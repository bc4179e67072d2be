"""User service settings: `USER_*` variables plus the shared ones of `CommSettings`."""

from pydantic_settings import SettingsConfigDict

from comm.settings import CommSettings


class UserSettings(CommSettings):
    """Everything the user service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="USER_", extra="ignore", populate_by_name=True)

    service_name: str = "user"
    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/user"
    # A 5000-character bio escaped as \uXXXX pairs is up to ~60 KB of JSON.
    max_body_bytes: int = 64 * 1024
    # Each consuming concern has its durable queue `<queue_prefix>.<concern>`; tests set a unique prefix.
    queue_prefix: str = "user"

    listen_host: str = "127.0.0.1"
    listen_port: int = 3003
