"""Request deadlines (docs/architecture.md §3): every request has a time after which its caller has given up.

The gateway gives each public request `GATEWAY_REQUEST_DEADLINE_SECONDS` (3 s). A call downstream (comm.http)
gets what is left of it, never more than its own retry deadline, and says so in `X-Request-Budget-Ms`: the
milliseconds its caller still waits (a duration, not a time of day, so no two clocks need agree). A service takes
that header as its own deadline; a request without one (an event handler's call, a probe) has the service's
`<P>REQUEST_DEADLINE_SECONDS`, by default none. The gateway strips the header from public requests (gateway.edge).

`DeadlineMiddleware` holds the deadline in a context variable for the request's task and cancels the request's
work a moment (`GRACE_SECONDS`) after it: a downstream call times out at the deadline itself and answers with its
typed error (504, counted by the breaker); the cancellation stops whatever else runs on (a query, a handler) and
answers 504 if nothing was sent yet.
"""

import asyncio
import json
import time
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-budget-ms"
_HEADER_BYTES = HEADER.encode()
# Past the deadline, how long a request's work may go on before it is cancelled: enough for a call downstream
# that timed out at the deadline to answer with its own error.
GRACE_SECONDS = 0.1

_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def seconds_left() -> float | None:
    """What is left of the current request's deadline (negative once passed), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def budget_header(seconds: float) -> str:
    """The header value for a call that its caller waits `seconds` for."""
    return str(max(0, int(seconds * 1000)))


class DeadlineMiddleware:
    """Give each HTTP request its deadline: the caller's budget header, else `default_seconds` (None: none)."""

    def __init__(self, app: ASGIApp, *, default_seconds: float | None) -> None:
        self.app = app
        self.default_seconds = default_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self._budget(scope)
        if budget is None:
            await self.app(scope, receive, send)
            return
        token = _deadline.set(time.monotonic() + budget)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(budget + GRACE_SECONDS):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if not started:
                await _deadline_exceeded(send)
        finally:
            _deadline.reset(token)

    def _budget(self, scope: Scope) -> float | None:
        for name, value in scope["headers"]:
            if name == _HEADER_BYTES and value.isdigit():
                return int(value) / 1000
        return self.default_seconds


async def _deadline_exceeded(send: Send) -> None:
    payload = json.dumps({"errors": {"body": ["request deadline exceeded"]}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 504, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
