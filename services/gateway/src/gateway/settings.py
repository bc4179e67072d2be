"""Gateway settings: `GATEWAY_*` variables plus the shared ones of `CommSettings` (service URLs, REDIS_URL...)."""

import ipaddress
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from comm.settings import CommSettings


class GatewaySettings(CommSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: str = "gateway"
    uses_broker: ClassVar[bool] = False  # no event in or out: it holds no broker URL
    verifies_internal_tokens: ClassVar[bool] = False  # nothing calls it with an internal token
    listen_host: str = "127.0.0.1"
    listen_port: int = 3000
    # The edge: an access line per public request.
    access_log: bool = True
    # Proxies (addresses or CIDR ranges, comma-separated) whose X-Forwarded-For names the client: the ingress's.
    # Empty, the default, trusts none: the client is the peer of the TCP connection, whatever headers it sends.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    # Keep a public request's `traceparent`/`tracestate` (an ingress or front end that starts the traces); by
    # default every public request starts a new trace (gateway.edge).
    trust_traceparent: bool = False
    # /metrics is served here, on the same host but not on the public port (0: any free port, for tests).
    metrics_port: int = 9464
    max_body_bytes: int = 256 * 1024
    # Every public request answers within this (a 504 at worst); calls downstream get what is left (comm.deadlines).
    request_deadline_seconds: float | None = Field(3.0, gt=0)

    # A validated user token is trusted this long without asking auth again: revocation takes effect within it.
    token_cache_ttl_seconds: float = 5.0
    token_cache_size: int = 10_000
    # Whom each signed-in viewer follows, kept this long (gateway.follows): dropped at once when the viewer follows
    # or unfollows, so the TTL only bounds what a drop that did not reach every copy leaves (Redis down meanwhile,
    # or replicas without Redis).
    # In Redis when REDIS_URL is set (shared by the replicas), else in memory, for at most this many viewers.
    follows_cache_ttl_seconds: float = Field(60.0, gt=0)
    follows_cache_size: int = Field(10_000, gt=0)

    # Browsers allowed to call the API (CORS); RealWorld front ends in development run on these ports.
    # GATEWAY_CORS_ORIGINS is a comma-separated list.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = (
        "http://localhost:3000",
        "http://localhost:4100",
        "http://localhost:4200",
        "http://localhost:5173",
        "http://localhost:8080",
    )

    # Rate limits (the `limits` library's notation), in memory, or shared through Redis when REDIS_URL is set.
    # Failed logins (gateway.ratelimit): per address and email, per address, per account (a short window).
    rate_limit_login: str = "5/minute"
    rate_limit_login_address: str = "20/minute"
    rate_limit_login_account: str = "10/minute"
    rate_limit_register: str = "20/minute"
    rate_limit_update_user: str = "20/minute"  # per user: email and username changes tell what is taken
    rate_limit_comment: str = "30/minute"
    rate_limit_comment_anonymous: str = "5/minute"

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in value:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names a value that is no address or range
        return value

    def weak_secrets(self) -> list[str]:
        """The shared ones but the broker's: the gateway publishes and consumes nothing, so it is given no RABBITMQ_URL
        (Kubernetes gives it no broker credentials) and its default is no secret of its."""
        return [line for line in super().weak_secrets() if not line.startswith("RABBITMQ_URL ")]
