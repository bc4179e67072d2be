"""Resources built in a lifespan and kept on `app.state`, reached by routes through one kind of dependency.

    Signer = Annotated[TokenSigner, Depends(app_state("signer", TokenSigner))]

The getter is `async def` like every dependency on the request path: FastAPI would run a plain `def` in a worker
thread, a hop that costs more than the attribute lookup.
"""

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")


def app_state(name: str, kind: type[T]) -> Callable[[Request], Coroutine[Any, Any, T]]:
    """A dependency returning `request.app.state.<name>`, typed as `kind`."""

    async def get(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    get.__name__ = get.__qualname__ = f"app_state_{name}"
    return get
