"""Settings every service shares (docs/architecture.md §1); each service subclasses them with its own env prefix.

The shared variables keep the seed's unprefixed names (`AUTH_SERVICE_URL`, `RABBITMQ_URL`, ...), so they carry an
explicit alias; everything a service adds is read under its prefix (`BLOG_DATABASE_URL`, ...).
No name may take the shape of a variable Kubernetes injects for a Service (`AUTH_PORT=tcp://10.0.0.10:3001`,
`AUTH_SERVICE_HOST`, `AUTH_PORT_3001_TCP_ADDR`, ...): that is why a service listens on `<P>LISTEN_HOST` and
`<P>LISTEN_PORT` rather than `<P>HOST` and `<P>PORT` (tests/test_k8s.py loads the settings with those variables).
Nothing reads the environment at import time: `create_app(settings=None)` builds them.

`ENVIRONMENT` says what kind of deployment this is. With `production` a service refuses to start when a secret is
missing or a development value (comm.cli checks before anything else); with `local`, the
default, it logs them as a warning. Every service's secrets are listed by `CommSettings.weak_secrets`.
"""

from typing import ClassVar, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from comm.keys import PublicKeys, decode_private_key, development_key, is_development_key, parse_public_keys

Environment = Literal["local", "production"]
# Values shipped in this repository (settings defaults, docker-compose.yml, the broker's definitions, the k8s
# placeholders) or that anyone would try first. A value containing "change-me" is a placeholder too.
DEVELOPMENT_VALUES = frozenset(
    {"guest", "postgres", "admin", "password", "secret", "blog", "auth", "user", "comment", "gateway"}
)


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def is_development_value(value: str) -> bool:
    """Whether a secret is one shipped for development (or an obvious guess)."""
    return value.lower() in DEVELOPMENT_VALUES or "change-me" in value.lower()


def url_password_problem(url: str) -> str | None:
    """What is wrong with the password in a database or broker URL, if anything."""
    password = urlsplit(url).password
    if not password:
        return "has no password"
    if is_development_value(password):
        return "has a development password"
    return None


class CommSettings(BaseSettings):
    """What the communication library needs from every service."""

    # Settings hold secrets: an invalid one is named with what is wrong with it, never echoed.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    service_name: str = "service"
    uses_broker: ClassVar[bool] = True  # whether RABBITMQ_URL is one of this service's secrets
    verifies_internal_tokens: ClassVar[bool] = True  # whether it is called (the gateway only calls)
    environment: Environment = Field("local", validation_alias=_env("ENVIRONMENT"))

    # Downstreams.
    auth_service_url: str = Field("http://localhost:3001", validation_alias=_env("AUTH_SERVICE_URL"))
    blog_service_url: str = Field("http://localhost:3002", validation_alias=_env("BLOG_SERVICE_URL"))
    user_service_url: str = Field("http://localhost:3003", validation_alias=_env("USER_SERVICE_URL"))
    comment_service_url: str = Field("http://localhost:3004", validation_alias=_env("COMMENT_SERVICE_URL"))

    # Broker.
    rabbitmq_url: str = Field("amqp://guest:guest@localhost:5672/", validation_alias=_env("RABBITMQ_URL"))
    events_exchange: str = Field("blog.events", validation_alias=_env("EVENTS_EXCHANGE"))

    # Events (docs/architecture.md §4): consumer flow control, retries, the relay. Read under the service's prefix.
    events_prefetch: int = 32
    events_max_attempts: int = 5
    events_retry_delay_seconds: float = 5.0
    events_delivery_limit: int = 20  # the broker's own guard against a message that crashes its consumer
    events_reconnect_interval_seconds: float = 2.0  # also the cap of the relay's and consumer's connect backoff
    events_publish_timeout_seconds: float = 10.0
    # A handler running longer fails (TimeoutError): retried, then parked, like any handler failure.
    events_handler_timeout_seconds: float = Field(30.0, gt=0)
    events_unroutable_max_length: int = Field(100_000, ge=1)  # X.unroutable's bound (comm.events.broker)
    events_heartbeat_seconds: int = Field(10, ge=1)  # a hung broker is given up on after 3 of them
    # A relay or consumer loop without progress for this long is reported stuck by `/ready`.
    events_stuck_after_seconds: float = 60.0
    outbox_poll_interval_seconds: float = 1.0
    outbox_batch_size: int = 100
    # Retention (comm.events.retention): sent outbox rows and dedup records are deleted after these; 0 keeps them.
    outbox_retention_seconds: float = 7 * 24 * 3600
    processed_events_retention_seconds: float = 14 * 24 * 3600
    events_prune_interval_seconds: float = 3600

    # Database connections, under the service's prefix (`BLOG_DATABASE_POOL_SIZE`, ...): the engine's pool (sessions,
    # writes, relays, consumers) and the hot reads' pool (comm.db.ReadPool). A process holds their sum at most.
    database_pool_size: int = Field(10, ge=1)
    database_read_pool_size: int = Field(10, ge=1)

    # Identity between services (docs/architecture.md §3, comm.keys): this app's private key, under its prefix
    # (`BLOG_INTERNAL_TOKEN_KEY`), and every caller's public key. Unset: development keys (ENVIRONMENT).
    internal_token_key: SecretStr | None = None
    internal_token_public_keys: str | None = Field(None, validation_alias=_env("INTERNAL_TOKEN_PUBLIC_KEYS"))
    internal_token_ttl_seconds: int = Field(60, validation_alias=_env("INTERNAL_TOKEN_TTL_SECONDS"))

    # Calls to other services (docs/architecture.md §3), under the service's prefix (`GATEWAY_HTTP_...`):
    # each caller tunes its own downstream calls.
    http_connect_timeout_seconds: float = 2.0
    http_read_timeout_seconds: float = 5.0
    http_max_connections: int = 100
    http_breaker_failure_threshold: int = 5
    http_breaker_reset_timeout_seconds: float = 10.0
    http_retry_max_attempts: int = 3
    http_retry_deadline_seconds: float = 10.0
    http_retry_backoff_base_seconds: float = 0.1
    http_retry_backoff_max_seconds: float = 2.0

    # How long a request may take when its caller sent no budget (comm.deadlines); None: as long as it takes.
    # Calls between services always carry the caller's budget; the gateway sets 3 s for every public request.
    request_deadline_seconds: float | None = Field(None, gt=0)

    # Serving (`python -m <service> serve`), under the service's prefix. An access line per request is for the
    # edge: between services every request is already a span and a metric, and the line would cost a tenth of a
    # service's read. uvicorn trusts no forwarded header: the gateway decides whose it trusts (trusted_proxies).
    log_level: str = "info"
    access_log: bool = False
    # `text` for a terminal, `json` lines for a log collector (comm.logs); one variable for every app.
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("LOG_FORMAT"))

    # Observability (docs/architecture.md §5).
    otel_exporter_otlp_endpoint: str | None = Field(None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL"))

    @field_validator("internal_token_key")
    @classmethod
    def _a_private_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_private_key(value.get_secret_value())  # its ValueError names no part of the key
        return value

    @field_validator("internal_token_public_keys")
    @classmethod
    def _public_keys(cls, value: str | None) -> str | None:
        if value is not None:
            parse_public_keys(value)
        return value

    def internal_token_private_key(self) -> Ed25519PrivateKey:
        """The key this app signs its internal tokens with; its development key when none is set."""
        if self.internal_token_key is None:
            return development_key(self.service_name)
        return decode_private_key(self.internal_token_key.get_secret_value())

    def internal_token_public_key_set(self) -> PublicKeys | None:
        """The callers' public keys; None (every caller's development key) when none are set."""
        return None if self.internal_token_public_keys is None else parse_public_keys(self.internal_token_public_keys)

    def env_name(self, field: str) -> str:
        """The variable a field of this service is read from under its prefix (`BLOG_DATABASE_URL`, ...)."""
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    def weak_secrets(self) -> list[str]:
        """One line per secret that is missing or a development value, naming its variable; subclasses add theirs."""
        weak: list[str] = []
        key_name = self.env_name("internal_token_key")
        if self.internal_token_key is None:
            weak.append(f"{key_name} is missing (the development key, which anyone can derive, would sign)")
        elif is_development_key(self.service_name, self.internal_token_private_key()):
            weak.append(f"{key_name} is the development key")
        public_keys = self.internal_token_public_key_set()
        if self.verifies_internal_tokens and public_keys is None:
            weak.append("INTERNAL_TOKEN_PUBLIC_KEYS is missing (any caller's development key would be accepted)")
        for name, keys in (public_keys or {}).items():
            if any(is_development_key(name, key) for key in keys):
                weak.append(f"INTERNAL_TOKEN_PUBLIC_KEYS holds the development key of {name}")
        if self.uses_broker and (problem := url_password_problem(self.rabbitmq_url)):
            weak.append(f"RABBITMQ_URL {problem}")
        database_url: str | None = getattr(self, "database_url", None)  # the gateway has no database
        if database_url is not None and (problem := url_password_problem(database_url)):
            weak.append(f"{self.env_name('database_url')} {problem}")
        return weak
