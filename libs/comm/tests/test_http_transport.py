"""AiohttpTransport against a real server: plain values in, an `Answer` (decoded body) or an httpx error out."""

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from comm.http.transport import AiohttpTransport
from comm.testing import free_port, serve

TIMEOUTS = (1.0, 0.3)  # connect, read


def _app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/echo", methods=["GET", "POST"])
    async def echo(request: Request) -> Response:
        peer = request.client.port if request.client else None
        payload = {"method": request.method, "body": (await request.body()).decode(), "headers": dict(request.headers)}
        payload["peer"] = peer
        return Response(json.dumps(payload), 201, {"x-answer": "42"}, media_type="application/json")

    @app.get("/gzip")
    async def gzipped() -> Response:
        return Response(gzip.compress(b'{"zipped": true}'), headers={"content-encoding": "gzip"})

    @app.get("/redirect")
    async def redirect() -> Response:
        return Response(status_code=307, headers={"location": "/echo"})

    @app.get("/slow")
    async def slow() -> Response:
        await asyncio.sleep(2)
        return Response(b"late")

    return app


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async with serve(_app(), timeout_graceful_shutdown=0.5) as url:
        yield url


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(max_connections=4)
    yield transport
    await transport.aclose()


async def _send(
    transport: AiohttpTransport,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """The answer as an httpx.Response for the assertions (its body is decoded already)."""
    answer = await transport.exchange(method, url, headers or {}, content, timeouts=TIMEOUTS)
    kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in ("content-encoding", "transfer-encoding")]
    return httpx.Response(answer.status, headers=kept, content=answer.body)


async def test_request_and_response_round_trip(transport: AiohttpTransport, base_url: str) -> None:
    response = await _send(transport, "POST", f"{base_url}/echo", content=b"hello", headers={"x-trace": "t1"})
    assert response.status_code == 201
    assert response.headers["x-answer"] == "42"
    echoed = response.json()
    assert (echoed["method"], echoed["body"]) == ("POST", "hello")
    assert echoed["headers"]["x-trace"] == "t1"
    assert echoed["headers"]["content-length"] == "5"


async def test_connections_are_reused(transport: AiohttpTransport, base_url: str) -> None:
    peers = {(await _send(transport, "GET", f"{base_url}/echo")).json()["peer"] for _ in range(5)}
    assert len(peers) == 1  # five sequential requests, one kept-alive connection


async def test_compressed_bodies_are_decoded(transport: AiohttpTransport, base_url: str) -> None:
    response = await _send(transport, "GET", f"{base_url}/gzip")
    assert response.json() == {"zipped": True}


async def test_redirects_are_not_followed(transport: AiohttpTransport, base_url: str) -> None:
    response = await _send(transport, "GET", f"{base_url}/redirect")
    assert response.status_code == 307


async def test_read_timeout(transport: AiohttpTransport, base_url: str) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await _send(transport, "GET", f"{base_url}/slow")


async def test_connection_refused(transport: AiohttpTransport) -> None:
    with pytest.raises(httpx.ConnectError):
        await _send(transport, "GET", f"http://127.0.0.1:{free_port()}/echo")
