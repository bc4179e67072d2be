"""An httpx transport over one long-lived aiohttp session: httpx's API at close to aiohttp's speed.

Why not httpx's own transport: measured on this machine (README "HTTP transport: measured"), a FastAPI proxy on
httpx's default transport reached a fraction of the throughput that the same proxy reached on aiohttp. This
transport keeps httpx's Request/Response types (so `httpx.MockTransport` stays the test seam) and does the least
per request: one pooled `aiohttp.ClientSession`, `ClientTimeout` objects reused, the body read in one piece,
response headers handed over as aiohttp's raw tuples, no cookie jar, no redirects, no decompression by aiohttp
(httpx decodes `Content-Encoding` itself), no environment proxies.

aiohttp's errors are mapped onto httpx's tree, so callers handle one family:

    aiohttp.ConnectionTimeoutError         -> httpx.ConnectTimeout
    aiohttp.SocketTimeoutError, TimeoutError -> httpx.ReadTimeout
    aiohttp.ClientConnectorError           -> httpx.ConnectError   (refused, DNS, unreachable)
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError, ClientPayloadError -> httpx.ReadError
    any other aiohttp.ClientError          -> httpx.TransportError
"""

import asyncio

import aiohttp
import httpx

_HTTP11 = {"http_version": b"HTTP/1.1"}


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through a pooled aiohttp session (HTTP/1.1, keep-alive)."""

    # Idle connections are closed after 4 s, before uvicorn's 5 s keep-alive timeout closes them from the other end:
    # sending on a connection the server is closing fails even a request that could not have been retried.
    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 4.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        # Requests of one client carry the same few timeout settings: build each ClientTimeout once.
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp requires.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        spec = request.extensions.get("timeout") or {}
        key = (spec.get("connect"), spec.get("read"), spec.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            # aiohttp's `connect` covers waiting for a pooled connection plus connecting.
            whole = None if connect is None or pool is None else connect + pool
            timeout = aiohttp.ClientTimeout(total=None, connect=whole, sock_connect=connect, sock_read=read)
            if len(self._timeouts) < 64:  # deadlines shrink timeouts: keep the cache bounded
                self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request and read its whole body."""
        session = self._session or self._open()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            ) as response:
                body = await response.read()
        except aiohttp.ClientError as exc:
            raise _to_httpx(exc, request) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        return httpx.Response(
            response.status, headers=response.raw_headers, content=body, request=request, extensions=_HTTP11
        )

    async def aclose(self) -> None:
        """Close the pool."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Let aiohttp's transports finish closing before the loop may stop.
            await asyncio.sleep(0)


def _to_httpx(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError):
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)
