"""Auth settings: `AUTH_*` variables plus the shared ones of `CommSettings`."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from comm.settings import CommSettings


class AuthSettings(CommSettings):
    """Everything the auth service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", populate_by_name=True)

    service_name: str = "auth"
    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/auth"
    max_body_bytes: int = 64 * 1024

    # User tokens (ES256). A PEM in the environment wins over a file; with neither, a development key is
    # generated into `dev_signing_key_file` on first start and the log says so.
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    dev_signing_key_file: Path = Path(".dev/auth-signing-key.pem")
    token_issuer: str = "blog-auth"
    token_audience: str = "blog"
    token_ttl_seconds: int = 24 * 3600

    # Passwords: Argon2id at or above OWASP's minimum (m = 19 MiB, t = 2, p = 1).
    password_min_length: int = 8
    password_max_length: int = 128
    argon2_time_cost: int = 2
    argon2_memory_cost_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    # Hashes and verifies running at once, each holding argon2_memory_cost_kib (auth.passwords): memory stays under
    # this times 19 MiB however many logins arrive together; the rest queue.
    password_hash_concurrency: int = Field(4, ge=1)

    listen_host: str = "127.0.0.1"
    listen_port: int = 3001
