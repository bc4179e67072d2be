"""What the gateway does to every request at the edge: drop identity headers a client may forge, and set the
headers every answer carries (no sniffing, no referrer, no framing) and those that keep answers carrying a token
out of every cache."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Headers that mean something inside the deployment; from outside they are forgeries, removed before routing.
FORGEABLE = frozenset({b"x-internal-token", b"x-user-id", b"x-user-roles", b"x-forwarded-user", b"x-auth-user"})
# On every answer: a JSON API is never a page to frame, a document to sniff into HTML, or a referrer to leak.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
# Answers that carry a token without the request holding one: registration and login.
ISSUING_TOKENS = frozenset({"/api/users", "/api/users/login"})


class EdgeMiddleware:
    """Strip internal identity headers; security headers on every answer; `Cache-Control: no-store` on answers to
    authenticated requests and on those that issue a token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name.lower() not in FORGEABLE]
        scope = {**scope, "headers": headers}
        no_store = scope["path"] in ISSUING_TOKENS or any(name.lower() == b"authorization" for name, _ in headers)
        added = (*SECURITY_HEADERS, (b"cache-control", b"no-store")) if no_store else SECURITY_HEADERS
        replaced = {name for name, _ in added}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in replaced]
                message = {**message, "headers": [*kept, *added]}
            await send(message)

        await self.app(scope, receive, with_headers)
