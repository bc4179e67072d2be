"""The API's timestamp format, made by Python (`format_api_timestamp`) and by PostgreSQL (`api_timestamp_column`)."""

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from sqlalchemy import DateTime, Integer, bindparam, make_url, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comm.db import ReadPool, Statement
from comm.testing import temporary_database
from comm.timestamps import api_timestamp_column, format_api_timestamp


class _Base(DeclarativeBase):
    pass


class _Stamped(_Base):
    __tablename__ = "stamped"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


_FORMATTED = Statement(select(api_timestamp_column(_Stamped.at)).where(_Stamped.id == bindparam("id", type_=Integer)))

VALUES = [
    datetime(2026, 12, 7, 6, 51, 2, 999_999, tzinfo=UTC),  # truncated, never rounded up to the next second
    datetime(2026, 12, 7, 6, 51, 2, tzinfo=UTC),  # a whole second keeps its ".000"
    datetime(2026, 12, 7, 6, 51, 2, 500, tzinfo=timezone(timedelta(hours=2))),  # another zone, in UTC
    datetime(2026, 1, 1, 0, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=-5))),  # across midnight and a year
    datetime(999, 1, 1, 0, 0, 0, 1_000, tzinfo=UTC),  # a year of three digits, padded
]


@pytest.mark.asyncio
async def test_postgresql_formats_timestamps_exactly_as_python_does() -> None:
    async with temporary_database("timestamps") as url:
        conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await conn.execute("CREATE TABLE stamped (id integer PRIMARY KEY, at timestamptz)")
            await conn.executemany("INSERT INTO stamped VALUES ($1, $2)", [*enumerate(VALUES), (len(VALUES), None)])
        finally:
            await conn.close()
        pool = await ReadPool.open(url, size=1)
        try:
            formatted = [await _FORMATTED.fetchval(pool, id=number) for number in range(len(VALUES) + 1)]
        finally:
            await pool.close()
    assert formatted == [*map(format_api_timestamp, VALUES), None]
    assert formatted[:2] == ["2026-12-07T06:51:02.999Z", "2026-12-07T06:51:02.000Z"]


def test_the_column_keeps_its_name_and_the_constants_are_in_the_sql() -> None:
    assert api_timestamp_column(_Stamped.at).key == "at"
    assert "$" not in _FORMATTED.sql.split("WHERE")[0]  # 'UTC' and the pattern are not parameters
