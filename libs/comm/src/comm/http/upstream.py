"""What a downstream's answer means: transport failures and statuses mapped onto the upstream error tree.

connect error, reset, refused   -> UpstreamUnavailable (503)
any httpx timeout               -> UpstreamTimeout (504)
503                             -> UpstreamUnavailable, its Retry-After kept
504                             -> UpstreamTimeout
500, 502, other 5xx, 3xx        -> UpstreamBadResponse (502)
4xx                             -> UpstreamClientError with the downstream's status and `errors`
2xx whose body misses the model -> UpstreamBadResponse
"""

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from comm.errors import (
    FieldErrors,
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from comm.http.transport import Answer

M = TypeVar("M", bound=BaseModel)

# Statuses that mean the downstream is unwell; they count against its breaker (a 4xx is our fault, not its).
BREAKER_FAILURE_STATUSES = frozenset({500, 502, 503, 504})


def transport_error(exc: httpx.TransportError, *, downstream: str) -> UpstreamError:
    """The upstream error for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(downstream=downstream)
    return UpstreamUnavailable(downstream=downstream)


def status_error(answer: Answer, *, downstream: str) -> UpstreamError:
    """The upstream error for an answer that is not a 2xx."""
    status = answer.status
    if status == 503:
        return UpstreamUnavailable(downstream=downstream, upstream_status=status, retry_after=_retry_after(answer))
    if status == 504:
        return UpstreamTimeout(downstream=downstream, upstream_status=status)
    if 400 <= status < 500:
        return UpstreamClientError(downstream=downstream, upstream_status=status, errors=_errors(answer))
    return UpstreamBadResponse(downstream=downstream, upstream_status=status)


def parse(answer: Answer, model: type[M], *, downstream: str) -> M:
    """The body validated into `model`; UpstreamBadResponse if it does not fit."""
    try:
        return model.model_validate_json(answer.body)
    except ValidationError as exc:
        raise UpstreamBadResponse(
            f"{downstream} sent a body that is not a valid {model.__name__}",
            downstream=downstream,
            upstream_status=answer.status,
        ) from exc


def _retry_after(answer: Answer) -> float:
    value = answer.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 1.0


def _errors(answer: Answer) -> FieldErrors | None:
    """The downstream's `{"errors": {field: [messages]}}`, if its body has that shape."""
    try:
        body: Any = json.loads(answer.body)
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, dict) or not errors:
        return None
    if not all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in errors.values()):
        return None
    return {str(key): list(messages) for key, messages in errors.items()}
