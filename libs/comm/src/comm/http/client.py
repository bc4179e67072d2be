"""`ServiceClient` (docs/architecture.md §3): one long-lived, pooled client per downstream per process.

    async with ServiceClient(downstream="blog", base_url=settings.blog_service_url, settings=settings) as blog:
        post = await blog.get("/posts/{post_id}", path_params={"post_id": post_id}, response_model=Post,
                              identity=Identity(user_id=user.id, roles=user.roles))

Every call passes the downstream's circuit breaker, is retried when that is safe (retry.py) within what is left of
the request's deadline (comm.deadlines; the downstream is told the rest in `X-Request-Budget-Ms`), runs in a CLIENT span
whose W3C trace context (`traceparent`) goes out with the request, and carries an internal token for the target
(`X-Internal-Token`) when an identity is given. Answers are validated into the given pydantic model; failures
surface as the upstream errors of comm.errors (see upstream.py for the mapping).

Transport, chosen by measurement (README "HTTP transport: measured", bench/http_proxy.py): a FastAPI proxy on
httpx's default transport reached 0.06 of the backend's direct throughput, on httpx-aiohttp's transport 0.16, on
raw aiohttp 0.25 (the issue's figures; ours are in the README). httpx's own layers cost too: `AsyncClient.send`
~150 µs per request on this machine (URL merging, cookies, auth flow, redirect and hook machinery we do not use),
its Request/URL/Response objects ~100 µs more. So calls go straight to `AiohttpTransport.exchange` (plain values
in, an `Answer` out; see transport.py); an injected httpx transport (`httpx.MockTransport` in unit tests) serves
the same calls through `httpx_exchange`. Tracing is done here rather than by the httpx instrumentation for the same
reason (its transport wrapper cost ~170 µs per request).
"""

import time
import urllib.parse
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypedDict, TypeVar, Unpack, overload

import httpx
import pydantic_core
from opentelemetry import propagate, trace
from pydantic import BaseModel

from comm import deadlines
from comm.errors import UpstreamTimeout
from comm.http.breaker import CircuitBreaker
from comm.http.retry import RetryPolicy, call_with_retries, is_idempotent
from comm.http.transport import AiohttpTransport, Answer, Exchange, Timeouts, httpx_exchange
from comm.http.upstream import BREAKER_FAILURE_STATUSES, parse, status_error, transport_error
from comm.metrics import CLIENT_RETRIES
from comm.settings import CommSettings
from comm.tokens import HEADER as TOKEN_HEADER
from comm.tokens import Identity, InternalTokens

M = TypeVar("M", bound=BaseModel)


class CallOptions(TypedDict, total=False):
    """What any call may add: path template values, query, headers, and the identity it is made for."""

    path_params: Mapping[str, object]
    params: Mapping[str, str | int]
    headers: Mapping[str, str]
    identity: Identity | None


class ServiceClient:
    """Calls to one downstream service: breaker, retries, tracing, internal tokens, validated answers."""

    def __init__(
        self,
        *,
        downstream: str,
        base_url: str,
        settings: CommSettings,
        transport: httpx.AsyncBaseTransport | AiohttpTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.downstream = downstream
        self._base_url = base_url.rstrip("/")
        transport = transport or AiohttpTransport(max_connections=settings.http_max_connections)
        self._transport = transport
        self._exchange: Exchange = (
            transport.exchange if isinstance(transport, AiohttpTransport) else httpx_exchange(transport)
        )
        self._tokens = InternalTokens.from_settings(settings)
        self._retry = RetryPolicy.from_settings(settings)
        self._retries = CLIENT_RETRIES.labels(settings.service_name, downstream)
        self.breaker = CircuitBreaker(
            service=settings.service_name,
            downstream=downstream,
            failure_threshold=settings.http_breaker_failure_threshold,
            reset_timeout=settings.http_breaker_reset_timeout_seconds,
            clock=clock,
        )
        self._connect_timeout = settings.http_connect_timeout_seconds
        self._read_timeout = settings.http_read_timeout_seconds
        self._timeout = self._timeouts(seconds_left=float("inf"))
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("comm.http")
        base = httpx.URL(self._base_url)
        self._span_attributes: dict[str, str | int] = {
            "server.address": base.host,
            "server.port": base.port or 80,
            "peer.service": downstream,
        }

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.aclose()

    @overload
    async def get(self, path: str, *, response_model: type[M], **options: Unpack[CallOptions]) -> M: ...
    @overload
    async def get(self, path: str, *, response_model: None = None, **options: Unpack[CallOptions]) -> None: ...
    async def get(
        self, path: str, *, response_model: type[M] | None = None, **options: Unpack[CallOptions]
    ) -> M | None:
        """GET `path`; retried on transient failures."""
        return await self.request("GET", path, response_model=response_model, **options)

    @overload
    async def post(
        self, path: str, *, json: Any = None, response_model: type[M], **options: Unpack[CallOptions]
    ) -> M: ...
    @overload
    async def post(
        self, path: str, *, json: Any = None, response_model: None = None, **options: Unpack[CallOptions]
    ) -> None: ...
    async def post(
        self, path: str, *, json: Any = None, response_model: type[M] | None = None, **options: Unpack[CallOptions]
    ) -> M | None:
        """POST `path`; retried only with an `Idempotency-Key` header."""
        return await self.request("POST", path, json=json, response_model=response_model, **options)

    @overload
    async def put(
        self, path: str, *, json: Any = None, response_model: type[M], **options: Unpack[CallOptions]
    ) -> M: ...
    @overload
    async def put(
        self, path: str, *, json: Any = None, response_model: None = None, **options: Unpack[CallOptions]
    ) -> None: ...
    async def put(
        self, path: str, *, json: Any = None, response_model: type[M] | None = None, **options: Unpack[CallOptions]
    ) -> M | None:
        """PUT `path`; retried on transient failures."""
        return await self.request("PUT", path, json=json, response_model=response_model, **options)

    @overload
    async def patch(
        self, path: str, *, json: Any = None, response_model: type[M], **options: Unpack[CallOptions]
    ) -> M: ...
    @overload
    async def patch(
        self, path: str, *, json: Any = None, response_model: None = None, **options: Unpack[CallOptions]
    ) -> None: ...
    async def patch(
        self, path: str, *, json: Any = None, response_model: type[M] | None = None, **options: Unpack[CallOptions]
    ) -> M | None:
        """PATCH `path`; retried only with an `Idempotency-Key` header (a patch need not be idempotent)."""
        return await self.request("PATCH", path, json=json, response_model=response_model, **options)

    @overload
    async def delete(self, path: str, *, response_model: type[M], **options: Unpack[CallOptions]) -> M: ...
    @overload
    async def delete(self, path: str, *, response_model: None = None, **options: Unpack[CallOptions]) -> None: ...
    async def delete(
        self, path: str, *, response_model: type[M] | None = None, **options: Unpack[CallOptions]
    ) -> M | None:
        """DELETE `path`; retried on transient failures."""
        return await self.request("DELETE", path, response_model=response_model, **options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        response_model: type[M] | None = None,
        **options: Unpack[CallOptions],
    ) -> M | None:
        """Send a request; its body validated into `response_model`, or None without one (e.g. for a 204)."""
        answer = await self._call(method, path, json=json, **options)
        return None if response_model is None else parse(answer, response_model, downstream=self.downstream)

    async def _call(self, method: str, path: str, *, json: Any, **options: Unpack[CallOptions]) -> Answer:
        """A 2xx answer, retried when that is safe; any other outcome raises an UpstreamError."""
        url = self._url(path, options.get("path_params"), options.get("params"))
        headers = self._headers(options.get("headers"), options.get("identity"), has_body=json is not None)
        body = None if json is None else pydantic_core.to_json(json)
        span_name = f"{method} {path}"
        budget = self._retry.deadline
        if (left := deadlines.seconds_left()) is not None:
            if left <= 0:
                raise UpstreamTimeout("request deadline exceeded", downstream=self.downstream)
            budget = min(budget, left)

        async def attempt(seconds_left: float) -> Answer:
            return await self._attempt(method, url, headers, body, span_name=span_name, seconds_left=seconds_left)

        if is_idempotent(method, headers):
            return await call_with_retries(attempt, policy=self._retry, retries=self._retries, budget=budget)
        return await attempt(budget)

    async def _attempt(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        span_name: str,
        seconds_left: float,
    ) -> Answer:
        """One request through the breaker, in a client span; a non-2xx answer raises."""
        timeouts = self._timeout if seconds_left >= self._read_timeout else self._timeouts(seconds_left=seconds_left)
        outgoing = dict(headers)
        outgoing[deadlines.HEADER] = deadlines.budget_header(seconds_left)
        attributes: dict[str, str | int] = {**self._span_attributes, "http.request.method": method, "url.full": url}
        # The breaker comes first: an open one fails fast, before any span or socket. Whatever happens once it has
        # admitted the call ends inside its guard, so a probe slot is never left taken.
        with (
            self.breaker.guard() as guard,
            self._tracer.start_as_current_span(span_name, kind=trace.SpanKind.CLIENT, attributes=attributes) as span,
        ):
            propagate.inject(outgoing)
            try:
                answer = await self._exchange(method, url, outgoing, body, timeouts=timeouts)
            except httpx.TransportError as exc:
                raise transport_error(exc, downstream=self.downstream) from exc
            guard.failed = answer.status in BREAKER_FAILURE_STATUSES
            span.set_attribute("http.response.status_code", answer.status)
            if answer.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
        if not 200 <= answer.status < 300:
            raise status_error(answer, downstream=self.downstream)
        return answer

    def _url(self, path: str, path_params: Mapping[str, object] | None, params: Mapping[str, str | int] | None) -> str:
        if path_params:
            # Each value is one path segment: a slug with "/" or ".." must not reach another route.
            path = path.format_map({key: _segment(value) for key, value in path_params.items()})
        url = self._base_url + path
        # urlencode writes what httpx.URL(url, params=...) wrote, in a seventh of the time (16 µs against 111 µs for
        # a page's four parameters): a page's call built its URL twice over, httpx's parse and then aiohttp's own.
        return f"{url}?{urllib.parse.urlencode(params)}" if params else url

    def _headers(self, extra: Mapping[str, str] | None, identity: Identity | None, *, has_body: bool) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if has_body:
            headers["content-type"] = "application/json"
        if extra:
            headers.update((key.lower(), value) for key, value in extra.items())
        if identity is not None:
            headers[TOKEN_HEADER.lower()] = self._tokens.mint(audience=self.downstream, identity=identity)
        return headers

    def _timeouts(self, *, seconds_left: float) -> Timeouts:
        """Connect and read timeouts, neither longer than what is left of the call's deadline."""
        return min(self._connect_timeout, seconds_left), min(self._read_timeout, seconds_left)


def _segment(value: object) -> str:
    """One path segment, percent-encoded; "." and ".." are encoded too, or URL parsers would resolve them away."""
    text = str(value)
    if text in (".", ".."):
        return "%2E" * len(text)
    return urllib.parse.quote(text, safe="")
