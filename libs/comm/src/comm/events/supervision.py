"""Background loops that never end silently (docs/operations.md, "Relays and consumers"): a relay or consumer runs
as a `Supervised` loop, restarted with backoff whenever it dies and logged each time, and `/ready` reports one
that is dead (between a death and its restart) or stuck (no `beat()` for `events_stuck_after_seconds`).

aiormq closes a connection whose broker went silent (no frames for three heartbeats) and sets `CancelledError`
on every future pending on it, publisher confirms included. That error is not the task being cancelled:
`lost_cancellation` tells the two apart, so the first is handled as the broker failure it is and only the second
ends the loop.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from comm.events.broker import backoff_delay
from comm.events.metrics import WORKER_DEATHS
from comm.settings import CommSettings

log = logging.getLogger(__name__)


def lost_cancellation(exc: BaseException) -> bool:
    """Whether `exc` is a CancelledError that does not cancel the current task (a future cancelled under it)."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


class Supervised:
    """Runs `run()` in a task until `stop()`; a death (an exception, a foreign cancellation, a return) is logged,
    counted in `worker_deaths_total` and followed, after a backoff, by a fresh `run()`."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        service: str,
        restart_cap_seconds: float,
        stuck_after_seconds: float,
    ) -> None:
        self.name = name
        self._run = run
        self._service = service
        self._restart_cap = restart_cap_seconds
        self._stuck_after = stuck_after_seconds
        self._task: asyncio.Task[None] | None = None
        self._beat_at = time.monotonic()
        self._death: str | None = None  # set while waiting to restart

    @classmethod
    def for_settings(cls, name: str, run: Callable[[], Awaitable[None]], settings: CommSettings) -> "Supervised":
        """A relay's or consumer's loop: restarts backed off up to the reconnect interval, stuck after
        `events_stuck_after_seconds`."""
        return cls(
            name,
            run,
            service=settings.service_name,
            restart_cap_seconds=settings.events_reconnect_interval_seconds,
            stuck_after_seconds=settings.events_stuck_after_seconds,
        )

    def start(self) -> None:
        """Start supervising in the background."""
        self.beat()
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])  # its own end is not an error of the caller's; the caller's cancel still is

    def beat(self) -> None:
        """The loop made progress (one turn, even a failed one): not stuck."""
        self._beat_at = time.monotonic()

    def problem(self) -> str | None:
        """Why this loop is not healthy, or None."""
        if self._task is None:
            return f"{self.name}: not running"
        if self._task.done():
            return f"{self.name}: dead ({_describe(self._task)})"
        if self._death is not None:
            return f"{self.name}: restarting after {self._death}"
        silent = time.monotonic() - self._beat_at
        if silent > self._stuck_after:
            return f"{self.name}: stuck, no progress for {silent:.0f} s"
        return None

    async def _supervise(self) -> None:
        deaths = 0
        while True:
            started = time.monotonic()
            try:
                await self._run()
                death = "returned"
            except asyncio.CancelledError as exc:
                if not lost_cancellation(exc):
                    raise
                death = "CancelledError, not a stop"
                log.exception("%s died (%s)", self.name, death)
            except Exception as exc:
                death = f"{type(exc).__name__}: {exc}"
                log.exception("%s died (%s)", self.name, death)
            if time.monotonic() - started > self._stuck_after:
                deaths = 0  # it had been running well: a fresh backoff
            deaths += 1
            self._death = death
            WORKER_DEATHS.labels(service=self._service, worker=self.name).inc()
            log.error("%s: restart %d after %s", self.name, deaths, death)
            await asyncio.sleep(backoff_delay(failures=deaths, cap=self._restart_cap))
            self._death = None
            self.beat()


def _describe(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return "returned" if exc is None else f"{type(exc).__name__}: {exc}"
