"""`python tests/soak_app.py SERVICE serve ...`: one app, as `python -m SERVICE` runs it, with the soak's failpoints.

A failpoint is a moment inside the event path where a crash loses the most if the code is wrong: a relay after the
broker confirmed a batch but before the rows are marked sent; a consumer after its transaction committed but before
the broker got the ack; a consumer inside a handler, its transaction open. The soak (tests/soak.py) arms one by
creating the file `$SOAK_FAILPOINTS/<replica>.<point>`; the next time this replica reaches that point it removes the
file and SIGKILLs itself, a crash with no cleanup, exactly there. SIGKILL from outside at a random moment would
rarely land in these windows; the soak restarts the replica as an orchestrator would.

The hooks wrap the library's own seams from outside (the relay's `before_mark_sent`, the batch applier, the
handlers a consumer registers), so nothing in the services knows about the soak.
"""

import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

from comm.events import batches, consumer, relay

POINTS = ("relay-before-mark", "consumer-before-ack", "consumer-in-handler")


def _crash_if_armed(point: str) -> None:
    armed = Path(os.environ["SOAK_FAILPOINTS"]) / f"{os.environ['SOAK_REPLICA']}.{point}"
    try:
        armed.unlink()
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _install() -> None:
    relay_init = relay.OutboxRelay.__init__

    async def before_mark_sent(_ids: Any) -> None:
        _crash_if_armed("relay-before-mark")

    def init(self: relay.OutboxRelay, **kwargs: Any) -> None:
        relay_init(self, **{"before_mark_sent": before_mark_sent, **kwargs})

    relay.OutboxRelay.__init__ = init  # type: ignore[method-assign]

    apply = batches.BatchApplier.apply

    async def apply_then_maybe_crash(self: batches.BatchApplier, *args: Any) -> bool:
        applied = await apply(self, *args)  # committed
        _crash_if_armed("consumer-before-ack")
        return applied

    batches.BatchApplier.apply = apply_then_maybe_crash  # type: ignore[method-assign]

    register = consumer.Consumer.register

    def register_crashing(self: consumer.Consumer, model: Any, handler: Any) -> None:
        async def handle(*args: Any, **kwargs: Any) -> Any:
            _crash_if_armed("consumer-in-handler")
            return await handler(*args, **kwargs)

        register(self, model, handle)

    consumer.Consumer.register = register_crashing  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    package, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    runpy.run_module(package, run_name="__main__", alter_sys=True)
