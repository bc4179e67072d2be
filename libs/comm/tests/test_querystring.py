"""comm.querystring.query_model: a query string validated into one model, answering and documented as FastAPI's
own parameters do (the same answers for the same query strings, good or bad, through the platform's error shape)."""

from enum import StrEnum
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field

from comm.errors import install_error_handlers
from comm.openapi import document_queries
from comm.querystring import query_model


class Order(StrEnum):
    NEW = "new"
    OLD = "old"


class Search(BaseModel):
    tag: str | None = Field(None, max_length=5)
    names: list[str] | None = None
    order: Order = Order.NEW
    limit: int = Field(20, ge=1, le=100)


def _app(*, ours: bool) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    document_queries(app)
    if ours:

        @app.get("/search")
        async def search(query: Annotated[Search, Depends(query_model(Search))]) -> dict[str, Any]:
            return query.model_dump()

    else:

        @app.get("/search")
        async def search_by_fastapi(
            tag: Annotated[str | None, Query(max_length=5)] = None,
            names: Annotated[list[str] | None, Query()] = None,
            order: Order = Order.NEW,
            limit: Annotated[int, Query(ge=1, le=100)] = 20,
        ) -> dict[str, Any]:
            return Search(tag=tag, names=names, order=order, limit=limit).model_dump()

    return app


QUERIES = [
    "",
    "tag=ab&limit=5&order=old",
    "names=a&names=b",  # a list takes every value
    "limit=3&limit=7",  # another field, the last
    "unknown=1&tag=",  # unknown ignored; an empty string is a value
    "limit=0",
    "limit=abc&tag=toolong",  # two errors at once
    "order=sideways",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_it_answers_as_fastapis_own_parameters_do(query: str) -> None:
    answers = []
    for ours in (False, True):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(_app(ours=ours)), base_url="http://t") as client:
            response = await client.get(f"/search?{query}")
            answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[1][0] == (422 if "limit=0" in query or "abc" in query or "sideways" in query else 200)


def test_the_fields_are_documented_as_the_operations_query_parameters() -> None:
    fastapis, ours = (_app(ours=ours).openapi() for ours in (False, True))
    operation, expected = ours["paths"]["/search"]["get"], fastapis["paths"]["/search"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        (p["name"], p["in"], p["required"]) for p in expected["parameters"]
    ]
    by_name = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert by_name["limit"] == {"default": 20, "maximum": 100, "minimum": 1, "title": "Limit", "type": "integer"}
    assert by_name["order"]["$ref"] == "#/components/schemas/Order"
    assert operation["responses"]["422"] == expected["responses"]["422"]
    assert {"Order", "HTTPValidationError", "ValidationError"} <= ours["components"]["schemas"].keys()
