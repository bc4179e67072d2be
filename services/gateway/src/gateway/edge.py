"""What the gateway does to every request at the edge: drop identity headers a client may forge, and keep
authenticated answers out of shared caches."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comm import deadlines

# Headers that mean something inside the deployment; from outside they are forgeries, removed before routing
# (a public request's deadline is the gateway's own, not one the client chose).
FORGEABLE = frozenset(
    {b"x-internal-token", b"x-user-id", b"x-user-roles", b"x-forwarded-user", b"x-auth-user", deadlines.HEADER.encode()}
)


class EdgeMiddleware:
    """Strip internal identity headers; `Cache-Control: no-store` on answers to authenticated requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name.lower() not in FORGEABLE]
        scope = {**scope, "headers": headers}
        if not any(name.lower() == b"authorization" for name, _ in headers):
            await self.app(scope, receive, send)
            return

        async def no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() != b"cache-control"]
                message = {**message, "headers": [*kept, (b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, no_store)
