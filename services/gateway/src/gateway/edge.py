"""What the gateway does to every request at the edge: drop identity headers a client may forge and the trace
context it may send, and set the headers every answer carries (no sniffing, no referrer, no framing) and those that
keep answers carrying a token out of every cache.

A public request starts a trace of its own: a client's `traceparent`/`tracestate` would choose the trace id the
request's spans, log lines, outbox rows and AMQP headers carry (and whether they are sampled), and its `baggage`
would ride into every service and every event (8 KB of it per outbox row). `GATEWAY_TRUST_TRACEPARENT=true` keeps
`traceparent`/`tracestate` for a deployment whose ingress or front end starts the traces; `baggage` is dropped
always (nothing in the platform reads it). The edge is the app's own `__call__` (`EdgeApp`), not a middleware: it
acts around every layer, so what it drops is gone before tracing reads the trace context, and its headers are on
every answer, the 500s Starlette's outermost error layer renders and CORS preflights included.
"""

from functools import partial

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Headers that mean something inside the deployment; from outside they are forgeries, removed before routing.
FORGEABLE = frozenset({b"x-internal-token", b"x-user-id", b"x-user-roles", b"x-forwarded-user", b"x-auth-user"})
BAGGAGE = frozenset({b"baggage"})
TRACE_CONTEXT = frozenset({b"traceparent", b"tracestate"})
# On every answer: a JSON API is never a page to frame, a document to sniff into HTML, or a referrer to leak.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
# Answers that carry a token without the request holding one: registration and login.
ISSUING_TOKENS = frozenset({"/api/users", "/api/users/login"})


class EdgeMiddleware:
    """Strip internal identity headers, baggage and (unless trusted) the client's trace context; security headers on
    every answer; `Cache-Control: no-store` on answers to authenticated requests and on those that issue a token."""

    def __init__(self, app: ASGIApp, *, trust_traceparent: bool = False) -> None:
        self.app = app
        self.dropped = FORGEABLE | BAGGAGE | (frozenset() if trust_traceparent else TRACE_CONTEXT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name.lower() not in self.dropped]
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


class EdgeApp(FastAPI):
    """The gateway's app: every request passes the edge (`guard`) before any layer of the app, tracing's reading of
    the trace context included, so a dropped `traceparent` starts a new trace rather than continuing the client's."""

    _edge: ASGIApp | None = None

    def guard(self, *, trust_traceparent: bool) -> None:
        self._edge = EdgeMiddleware(partial(FastAPI.__call__, self), trust_traceparent=trust_traceparent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._edge is None:
            raise RuntimeError("EdgeApp.guard() was not called: the edge would be skipped")
        await self._edge(scope, receive, send)
