"""A scriptable downstream for tests: answers as told, counts what it gets (serve it with comm.testing.serve)."""

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One answer: after `delay` seconds, `status` with `body` as JSON (no body for 204)."""

    status: int = 200
    delay: float = 0.0
    body: Any = field(default_factory=lambda: {"id": 1, "name": "ok"})
    headers: dict[str, str] = field(default_factory=dict)


class Downstream:
    """`/{name}` answers with the replies scripted for `name`, in order, then 200; `hits` counts by name."""

    def __init__(self) -> None:
        self.hits: collections.Counter[str] = collections.Counter()
        self.requests: list[Request] = []
        self._scripts: dict[str, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self.app = FastAPI()
        self.app.add_api_route("/{name}", self._answer, methods=["GET", "POST", "PUT", "DELETE"])

    def script(self, name: str, *replies: Reply) -> None:
        """Queue `replies` for `/name`."""
        self._scripts[name].extend(replies)

    async def _answer(self, name: str, request: Request) -> Response:
        self.hits[name] += 1
        self.requests.append(request)
        script = self._scripts[name]
        reply = script.popleft() if script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status == 204:
            return Response(status_code=204, headers=reply.headers)
        return JSONResponse(reply.body, reply.status, reply.headers)
