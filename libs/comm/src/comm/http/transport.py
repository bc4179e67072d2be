"""The wire under ServiceClient: one long-lived aiohttp session per downstream, and the httpx seam for tests.

Measured on this machine (README "HTTP transport: measured", bench/http_proxy.py): httpx's default transport is
far too slow for a proxy, and httpx's own objects are a large part of the cost of a call even over aiohttp (URL
parsing, header normalisation, response decoding: pure Python, ~100 µs per request here; `httpx.AsyncClient.send`
as much again). So ServiceClient's calls go through `Exchange`: send a request given as plain values, get an
`Answer` (status, headers, whole body). `AiohttpTransport.exchange` does that straight on aiohttp, with
ClientTimeout objects reused, no cookie jar, no redirects, no environment proxies and no compression asked for.
Any httpx transport (`httpx.MockTransport` in unit tests) fits the same call through `httpx_exchange`.

aiohttp's errors are mapped onto httpx's tree, so callers handle one family:

    aiohttp.ConnectionTimeoutError            -> httpx.ConnectTimeout
    aiohttp.SocketTimeoutError, TimeoutError  -> httpx.ReadTimeout
    aiohttp.ClientConnectorError              -> httpx.ConnectError   (refused, DNS, unreachable)
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError, ClientPayloadError -> httpx.ReadError
    any other aiohttp.ClientError             -> httpx.TransportError
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx
import yarl

Timeouts = tuple[float, float]  # connect (also the wait for a pooled connection), read; seconds


@dataclass(frozen=True, slots=True)
class Answer:
    """What a downstream answered: status, headers (case-insensitive), the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Exchange(Protocol):
    """Send one request, read the whole answer; transport failures raise httpx.TransportError."""

    async def __call__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, *, timeouts: Timeouts
    ) -> Answer: ...


class AiohttpTransport:
    """A pooled aiohttp session (HTTP/1.1, keep-alive), as an `Exchange`."""

    # Idle connections are closed after 4 s, before uvicorn's 5 s keep-alive timeout closes them from the other end:
    # sending on a connection the server is closing fails even a request that could not have been retried.
    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 4.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        # A client sends the same few timeouts again and again: build each ClientTimeout once.
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp requires.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # JSON between services on the same network: compressing costs more CPU than it saves.
            skip_auto_headers=("Accept-Encoding",),
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            connect, read = timeouts
            timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)
            if len(self._timeouts) < 64:  # deadlines shrink timeouts: keep the cache bounded
                self._timeouts[timeouts] = timeout
        return timeout

    async def exchange(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, *, timeouts: Timeouts
    ) -> Answer:
        """Send one request and read its whole body (an `Exchange`)."""
        session = self._session or self._open()
        try:
            # The URL is already percent-encoded (ServiceClient); yarl must not decode and re-resolve it.
            async with session.request(
                method,
                yarl.URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeouts),
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except aiohttp.ClientError as exc:
            raise _to_httpx(exc) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc

    async def aclose(self) -> None:
        """Close the pool."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Let aiohttp's transports finish closing before the loop may stop.
            await asyncio.sleep(0)


def httpx_exchange(transport: httpx.AsyncBaseTransport) -> Exchange:
    """Any httpx transport as an `Exchange` (how `httpx.MockTransport` serves unit tests)."""

    async def exchange(
        method: str, url: str, headers: Mapping[str, str], body: bytes | None, *, timeouts: Timeouts
    ) -> Answer:
        connect, read = timeouts
        timeout = {"connect": connect, "read": read, "write": read, "pool": connect}
        request = httpx.Request(method, url, headers=headers, content=body, extensions={"timeout": timeout})
        response = await transport.handle_async_request(request)
        try:
            return Answer(response.status_code, response.headers, await response.aread())
        finally:
            await response.aclose()

    return exchange


def _to_httpx(exc: aiohttp.ClientError) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)
