"""Retries (docs/architecture.md §3): tenacity, full jitter, a cap, few attempts, one deadline for all of them.

Only idempotent requests are retried (GET, PUT, DELETE, or any request with an `Idempotency-Key`), and only on
connection errors, timeouts and 502/503/504: the seed retries anything, which sends a POST twice when its answer
was lost. An open breaker is not retried either: it says the downstream needs rest.

Retries wrap the breaker, not the other way round: every attempt passes the breaker, so each failure counts
towards opening it, and once it opens the next attempt fails fast and ends the retries. A breaker around the whole
retry loop would count three failed attempts as one and keep sending them to a dead downstream.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from comm.errors import CircuitOpen, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from comm.settings import CommSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

IDEMPOTENCY_HEADER = "idempotency-key"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts, deadline (seconds, all attempts and waits together) and backoff."""

    max_attempts: int = 3
    deadline: float = 10.0
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    attempt_floor: float = 0.05  # an attempt with less time than this left could not finish: don't start it

    @classmethod
    def from_settings(cls, settings: CommSettings) -> "RetryPolicy":
        return cls(
            max_attempts=settings.http_retry_max_attempts,
            deadline=settings.http_retry_deadline_seconds,
            backoff_base=settings.http_retry_backoff_base_seconds,
            backoff_max=settings.http_retry_backoff_max_seconds,
        )


def is_idempotent(method: str, headers: Mapping[str, str]) -> bool:
    """Safe to send twice: an idempotent method, or a request the server deduplicates by its key."""
    return method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in headers


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts and 502/503/504 answers; never an open breaker."""
    if isinstance(exc, CircuitOpen):
        return False
    if isinstance(exc, UpstreamUnavailable | UpstreamTimeout):
        return True
    return isinstance(exc, UpstreamBadResponse) and exc.upstream_status == 502


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    retries: Counter,
    budget: float | None = None,
) -> T:
    """Await `attempt(seconds_left)` until it succeeds, fails for good, or attempts or deadline run out; the
    deadline is `budget` seconds from now when given (what is left of the request's), else the policy's."""
    budget = policy.deadline if budget is None else budget
    deadline_at = time.monotonic() + budget
    try:
        return await attempt(budget)
    except Exception as exc:
        if policy.max_attempts <= 1 or not is_retryable(exc):
            raise
        first_failure = exc
    # Most calls succeed at once; tenacity (tens of microseconds per call) takes over from the first failure,
    # which it is handed as its own attempt 1 so its backoff, stop and statistics count it.
    replayed = False

    async def again() -> T:
        nonlocal replayed
        if not replayed:
            replayed = True
            raise first_failure
        return await attempt(deadline_at - time.monotonic())

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts)
        | stop_before_delay(max(0.0, deadline_at - time.monotonic() - policy.attempt_floor)),
        wait=wait_random_exponential(multiplier=policy.backoff_base, max=policy.backoff_max),
        retry=retry_if_exception(is_retryable),
        before_sleep=lambda state: _count(state, retries),
        reraise=True,
    )
    return await retrying(again)


def _count(state: RetryCallState, retries: Counter) -> None:
    retries.inc()
    failure = state.outcome.exception() if state.outcome else None
    log.info("retrying after %s (attempt %d failed)", type(failure).__name__, state.attempt_number)
