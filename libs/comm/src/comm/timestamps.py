"""Timestamps in API bodies: RFC 3339 in UTC, always with milliseconds and `Z` (`2026-11-29T12:00:00.123Z`).

RealWorld clients require the fraction and the zone; pydantic's default drops the fraction when it is zero, and
writes microseconds otherwise. Answers carry timestamps as text already in this format (`FormattedTimestamp`),
made in one of two places, both here: by PostgreSQL for hot reads, which select them formatted
(`api_timestamp_column`), and by `format_api_timestamp` for answers built from a stored row in Python (writes,
single reads). A pydantic serializer calling `format_api_timestamp` back per timestamp, as answers once did, cost
about 1.4 µs each: the 60 of a page of 20 posts were a sixth of blog's instructions for that page
(bench/instructions.py), where `to_char` costs the database about as much as decoding a timestamp costs asyncpg.
Services send the text on; the gateway passes it through as it came, neither parsing nor formatting it again.
Event bodies have their own format, chrono's (`format_event_timestamp` in comm.events.timestamps: no fraction when
whole, else 3 or 6 digits), kept because a Rust producer or consumer writes and expects exactly that; hence two
functions, each named for its wire.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnClause, Label, func, literal_column
from sqlalchemy.orm import InstrumentedAttribute


def format_api_timestamp(value: datetime) -> str:
    """Milliseconds, as JavaScript writes them; a naive datetime is taken as UTC.

    `isoformat` is C; a strftime pattern took a tenth of a page's CPU (three timestamps per article)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():  # a zero offset is falsy: already UTC
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


# A timestamp already in the API's format (`api_timestamp_column`, or another service's answer): text, sent as is.
FormattedTimestamp = str

# `format_api_timestamp` in PostgreSQL's `to_char`: both truncate to milliseconds (test_timestamps.py checks they
# agree). Constants of ours, written into the SQL rather than sent as parameters with every query.
_UTC: ColumnClause[str] = literal_column("'UTC'")
_TO_CHAR_PATTERN: ColumnClause[str] = literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'""")


def api_timestamp_column(column: InstrumentedAttribute[Any]) -> Label[str]:
    """A model's `timestamptz` column as PostgreSQL formats it for the API (null stays null), under the column's
    own name, for a hot read's select."""
    return func.to_char(func.timezone(_UTC, column), _TO_CHAR_PATTERN).label(column.key)
