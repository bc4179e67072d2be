"""A circuit breaker per downstream (docs/architecture.md §3), safe under concurrent asyncio tasks.

    closed --N consecutive failures--> open --reset timeout--> half-open --probe succeeds--> closed
                                        ^                          |
                                        +------probe fails---------+

Half-open admits exactly one probe at a time; every other call fails fast with `CircuitOpen` while it is in flight.
The seed's breaker takes `&mut self` and so serialises callers; ours is shared by every task of the process, which is
safe without a lock because each decision (admit, record) runs without an `await` in between.

Hand-written on purpose: aiobreaker lets every concurrent call through in half-open and reads the wall clock
(`datetime.now()`), pybreaker's async support is Tornado-only and also reads the wall clock; we need the one-probe
rule and an injectable monotonic clock for tests.
"""

import enum
import logging
import time
from collections.abc import Callable
from types import TracebackType

from comm.errors import CircuitOpen
from comm.metrics import BREAKER_STATE, BREAKER_TRANSITIONS

log = logging.getLogger(__name__)


class State(enum.IntEnum):
    """The gauge value of each state."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Closed, open or half-open; `guard()` wraps one call to the downstream."""

    def __init__(
        self,
        *,
        service: str,
        downstream: str,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.downstream = downstream
        self._failure_threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._gauge = BREAKER_STATE.labels(service, downstream)
        self._transitions = {to: BREAKER_TRANSITIONS.labels(service, downstream, to.name.lower()) for to in State}
        self._gauge.set(State.CLOSED)

    @property
    def state(self) -> State:
        """The current state (an open breaker whose timeout has passed reports half-open)."""
        if self._state is State.OPEN and self._clock() >= self._opened_at + self._reset_timeout:
            return State.HALF_OPEN
        return self._state

    def guard(self) -> "Guard":
        """Admit one call or raise CircuitOpen; use as `with breaker.guard() as call: ...`."""
        return Guard(self, probe=self._admit())

    def _admit(self) -> bool:
        """True if the admitted call is the half-open probe."""
        if self._state is State.CLOSED:
            return False
        if self.state is State.HALF_OPEN and not self._probing:
            self._move(State.HALF_OPEN)
            self._probing = True
            return True
        raise CircuitOpen(downstream=self.downstream, retry_after=self._retry_after())

    def _retry_after(self) -> float:
        # While the probe is in flight, its answer is due within about a reset timeout at most.
        remaining = self._opened_at + self._reset_timeout - self._clock()
        return remaining if remaining > 0 else self._reset_timeout

    def record(self, *, failed: bool, probe: bool) -> None:
        """Count the outcome of an admitted call."""
        if probe:
            self._probing = False
            if failed:
                self._open()
            else:
                self._move(State.CLOSED)
        elif self._state is State.CLOSED:
            # Calls admitted before the breaker opened may finish after it: only closed-state calls count.
            self._failures = self._failures + 1 if failed else 0
            if self._failures >= self._failure_threshold:
                self._open()

    def release(self, *, probe: bool) -> None:
        """Forget an admitted call that ended without an outcome (cancelled): let the next call probe."""
        if probe:
            self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(State.OPEN)

    def _move(self, to: State) -> None:
        if to is State.CLOSED:
            self._failures = 0
        if to is self._state:
            return
        log.warning("circuit breaker for %s: %s -> %s", self.downstream, self._state.name, to.name)
        self._state = to
        self._gauge.set(to)
        self._transitions[to].inc()


class Guard:
    """One admitted call: an exception counts as a failure, as does `failed = True` (e.g. a 503 answer)."""

    __slots__ = ("_breaker", "failed", "probe")

    def __init__(self, breaker: CircuitBreaker, *, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self.failed = False

    def __enter__(self) -> "Guard":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, Exception):
            self._breaker.record(failed=self.failed or exc is not None, probe=self.probe)
        else:  # cancelled: no outcome
            self._breaker.release(probe=self.probe)
