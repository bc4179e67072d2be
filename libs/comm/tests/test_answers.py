"""JSONAnswer writes what pydantic-core's `to_json` would, whatever the answer holds (comm.answers)."""

import datetime as dt
import enum
import uuid
from decimal import Decimal

import pydantic_core
from asyncpg.pgproto.pgproto import UUID as AsyncpgUUID
from pydantic import BaseModel

from comm.answers import JSONAnswer


class Colour(enum.StrEnum):
    RED = "red"


class Small(BaseModel):
    name: str


def test_plain_data_is_written_as_to_json_writes_it() -> None:
    content = {
        "text": 'naïve — ✓ "quoted" \\ \n',
        "int": 7,
        "negative": -(2**40),
        "float": 0.1,
        "bool": True,
        "none": None,
        "list": [1, "two", [3.5], {}],
        "nested": {"a": {"b": []}},
    }
    assert JSONAnswer(content).body == pydantic_core.to_json(content)


def test_what_orjson_would_write_otherwise_is_written_as_pydantic_writes_it() -> None:
    moment = dt.datetime(2026, 12, 7, 16, 14, 45, 669000, tzinfo=dt.UTC)
    content = {
        "datetime": moment,
        "naive": moment.replace(tzinfo=None),
        "date": moment.date(),
        "uuid": uuid.UUID("b17d5b7b-aae3-41e4-b911-a92642100316"),
        "asyncpg uuid": AsyncpgUUID("b17d5b7b-aae3-41e4-b911-a92642100316"),
        "decimal": Decimal("1.50"),
        "big int": 2**70,
        "enum": Colour.RED,
        "model": Small(name="x"),
    }
    assert JSONAnswer(content).body == pydantic_core.to_json(content)
