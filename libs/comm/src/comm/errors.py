"""Errors that carry their HTTP status, and the one set of handlers that renders them (docs/architecture.md §2).

Every error reaches the client as `{"errors": {"body": ["..."]}}`, or field-keyed
(`{"errors": {"email": ["has already been taken"]}}`); 429, 503 and 504 carry `Retry-After`.

    AppError                      500  base: `status_code` and `detail` as class attributes
    ├── NotFound                  404  e.g. `class PostNotFound(NotFound): detail = "article not found"`
    ├── Unauthorized              401
    ├── Forbidden                 403
    ├── Validation                422  optional field-keyed `errors`
    │   └── Conflict              422  RealWorld reports "has already been taken" as a validation error
    ├── PayloadTooLarge           413
    ├── RateLimited               429  + Retry-After
    ├── DatabaseUnavailable       503  + Retry-After: the database connection was lost or refused mid-request
    └── UpstreamError             502  a downstream service failed us (raised by comm.http)
        ├── UpstreamUnavailable   503  + Retry-After: refused, reset, or the downstream answered 503
        │   └── CircuitOpen       503  the breaker fails fast; `retry_after` = time until it lets a probe through
        ├── UpstreamTimeout       504  + Retry-After: no answer in time, or the downstream answered 504
        ├── UpstreamBadResponse   502  an unexpected 5xx or 3xx, or a body that does not fit the model
        └── UpstreamClientError   4xx  the downstream's own 4xx, passed through with its status and `errors`

Two failures from outside this tree are rendered too: a database connection lost or refused mid-request is 503
with `Retry-After`, as DatabaseUnavailable (the transaction rolled back, nothing half-written; a retry gets a new
connection), and anything else unhandled is 500.
"""

import logging
import math
from collections.abc import Mapping
from typing import ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from comm.metrics import record_error

log = logging.getLogger(__name__)

FieldErrors = Mapping[str, list[str]]


class AppError(Exception):
    """An error with its HTTP status; `detail` is the message shown to the client."""

    status_code: ClassVar[int] = 500
    detail: str = "internal error"
    retry_after: float | None = None

    def __init__(self, detail: str | None = None, *, errors: FieldErrors | None = None) -> None:
        if detail is not None:
            self.detail = detail
        self.errors: FieldErrors = errors or {"body": [self.detail]}
        super().__init__(self.detail)

    @property
    def status(self) -> int:
        """The status to answer with (an instance may differ from its class, see UpstreamClientError)."""
        return self.status_code


class NotFound(AppError):
    status_code = 404
    detail = "not found"


class Unauthorized(AppError):
    status_code = 401
    detail = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    detail = "forbidden"


class Validation(AppError):
    status_code = 422
    detail = "invalid request"


class Conflict(Validation):
    detail = "already exists"


class PayloadTooLarge(AppError):
    status_code = 413
    detail = "request body too large"


class RateLimited(AppError):
    status_code = 429
    detail = "too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DatabaseUnavailable(AppError):
    status_code = 503
    detail = "database unavailable, try again"
    retry_after = 1.0


class UpstreamError(AppError):
    """A downstream service failed; `downstream` names it, `upstream_status` is what it answered, if anything."""

    status_code = 502
    detail = "upstream service failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        downstream: str = "",
        upstream_status: int | None = None,
        errors: FieldErrors | None = None,
    ) -> None:
        super().__init__(detail, errors=errors)
        self.downstream = downstream
        self.upstream_status = upstream_status


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    detail = "upstream service unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        downstream: str = "",
        upstream_status: int | None = None,
        retry_after: float = 1.0,
    ) -> None:
        super().__init__(detail, downstream=downstream, upstream_status=upstream_status)
        self.retry_after = retry_after


class CircuitOpen(UpstreamUnavailable):
    detail = "upstream service unavailable (circuit open)"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    detail = "upstream service timed out"
    retry_after = 1.0


class UpstreamBadResponse(UpstreamError):
    detail = "upstream service gave a bad response"


class UpstreamClientError(UpstreamError):
    """The downstream refused the request (4xx); the caller's client sees the same status and errors."""

    detail = "upstream service refused the request"

    @property
    def status(self) -> int:
        return self.upstream_status or self.status_code


# What asyncpg raises when a connection breaks or the server ends it (pg_terminate_backend, a restart).
CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    OSError,
)


# SQLSTATE classes of a server that cannot serve now: connection exception, insufficient resources (too many
# connections), operator intervention (terminated, shutting down, starting up).
_UNAVAILABLE_CLASSES = ("08", "53", "57")


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database is unreachable or refusing connections, rather than
    that the work itself failed: the same work may succeed once the database is back."""
    seen: BaseException | None = exc
    for _ in range(8):  # an exception's causes, not an endless chain
        if seen is None:
            break
        if isinstance(seen, (*CONNECTION_LOST, DatabaseUnavailable, PoolTimeout)):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith(_UNAVAILABLE_CLASSES)
            or (sqlstate == "55000" and "not currently accepting connections" in str(seen))  # ALLOW_CONNECTIONS false
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def install_error_handlers(app: FastAPI) -> None:
    """Render AppError, validation errors, Starlette's HTTP errors and anything unhandled in the error shape."""
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_exception)  # type: ignore[arg-type]
    # Database failures, through SQLAlchemy or straight from asyncpg (the hot reads' pool): 503 or 500 by one rule.
    for failure in (DBAPIError, ConnectionError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(failure, _database_error)
    app.add_exception_handler(Exception, _unhandled)


def error_response(
    status: int, errors: FieldErrors, *, retry_after: float | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The error shape, with `Retry-After` in whole seconds when given."""
    merged = dict(headers or {})
    if retry_after is not None:
        merged["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse({"errors": {key: list(messages) for key, messages in errors.items()}}, status, merged)


async def _app_error(request: Request, exc: AppError) -> JSONResponse:
    record_error(request.app, error_type=type(exc).__name__)
    if isinstance(exc, UpstreamError):
        # An open breaker fails every call fast: its transitions are logged once, not each refusal.
        level = logging.DEBUG if isinstance(exc, CircuitOpen) else logging.WARNING
        log.log(level, "%s from %s on %s %s", type(exc).__name__, exc.downstream, request.method, request.url.path)
    return error_response(exc.status, exc.errors, retry_after=exc.retry_after)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    record_error(request.app, error_type=type(exc).__name__)
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        # Key by the offending field (the last element of its location), as RealWorld clients expect.
        loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
        errors.setdefault(loc[-1] if loc else "body", []).append(str(error.get("msg", "invalid")))
    return error_response(422, errors or {"body": ["invalid request"]})


async def _http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    record_error(request.app, error_type=type(exc).__name__)
    if exc.status_code == 400:  # a body that is not JSON (or not UTF-8): a validation error like any other
        return error_response(422, {"body": ["request body is not valid JSON"]})
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(exc.status_code, {"body": [detail]}, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of the path (as the OpenAPI documents it) that this URL matched first: Starlette names only
    the first route's. `/api/articles/feed` is GET only, though `/api/articles/{slug}` would take it too."""
    scope = {**request.scope, "method": "GET"}
    routes = [route for route in request.app.router.routes if isinstance(route, Route)]
    path = next((route.path for route in routes if route.matches(scope)[0] != Match.NONE), None)
    return sorted({method for route in routes if route.path == path for method in route.methods or ()})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A lost or refused database connection is 503 (`database_unreachable`, the rule consumers hold deliveries by
    too); any other database error is a bug (500)."""
    if not database_unreachable(exc):
        return await _unhandled(request, exc)
    record_error(request.app, error_type=type(exc).__name__)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, {"body": [DatabaseUnavailable.detail]}, retry_after=DatabaseUnavailable.retry_after)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    record_error(request.app, error_type=type(exc).__name__)
    # The server logs the traceback too (Starlette re-raises after answering); this line carries the trace id.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return error_response(500, {"body": ["internal error"]})
