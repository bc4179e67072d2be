"""A request body cap for every app: 413 in the error shape, before the body is parsed or stored.

uvicorn has no limit per request. Starlette 1.x has one (RequestBodyLimitMiddleware, FastAPI's `max_body_size`),
which this predates: it builds a responder per request and answers a declared oversize body in plain text once
the app does not read it; moving to it is untried. This small ASGI middleware is ours meanwhile.
It checks `Content-Length` up front and counts the bytes of a streamed (chunked) body as they arrive. A streamed body
that passes the cap raises inside the app's receive, where FastAPI's body parsing turns any error into a 400 (our
error handlers then answer 422): so once the cap is passed, whatever the app answers is replaced by the 413 here,
and an error that escapes the app is too.
"""

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised inside the receive channel when a streamed body passes the cap."""


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _reject(send, self.max_bytes)
            return
        received = 0
        too_large = False  # the streamed body passed the cap: the answer is the 413, whatever the app makes of it
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                too_large = True
                raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if too_large:
                if not answered and message["type"] == "http.response.start":
                    answered = True
                    await _reject(send, self.max_bytes)
                return  # the app's own answer (its 400/422 for a body it could not read) is dropped
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
            if not answered:
                await _reject(send, self.max_bytes)


async def _reject(send: Send, max_bytes: int) -> None:
    body: dict[str, Any] = {"errors": {"body": [f"request body is larger than {max_bytes} bytes"]}}
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
