"""A route's query parameters as one pydantic model, validated in one step: `Depends(query_model(Model))`.

FastAPI extracts and validates each declared query parameter on its own, on every request, through several layers
of its own (aliases, whether the annotation is a sequence, a validation per field). Measured on blog's page of 20
(bench/instructions.py, callgrind): for its seven parameters that was 9 % of the request's instructions; FastAPI's
own query models (`Annotated[Model, Query()]`) still extract field by field and saved 2.4 %. This dependency reads
the query string itself and validates it into the model at once. A bad value is FastAPI's own 422
(`RequestValidationError`, located in `query` as FastAPI locates it); unknown parameters are ignored, and a
parameter given twice counts once, its last value, as with FastAPI, except for list fields, which take them all.
comm.openapi documents the model's fields as the operation's query parameters.
"""

from collections.abc import Awaitable, Callable
from types import UnionType
from typing import TypeVar, Union, get_args, get_origin

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from comm.openapi import reads_query

M = TypeVar("M", bound=BaseModel)


def query_model(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency (async, so FastAPI runs it on the loop, not in a thread) giving the query string as `model`."""
    lists = frozenset(field.alias or name for name, field in model.model_fields.items() if _is_list(field.annotation))

    async def parse(request: Request) -> M:
        params = request.query_params
        values = {key: params.getlist(key) if key in lists else params[key] for key in params}
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError([{**error, "loc": ("query", *error["loc"])} for error in errors]) from None

    return reads_query(model)(parse)


def _is_list(annotation: object) -> bool:
    """`list[...]`, also in a union (`list[str] | None`)."""
    origin = get_origin(annotation)
    return origin is list or (origin in (Union, UnionType) and any(map(_is_list, get_args(annotation))))
