"""Timestamps in API bodies: RFC 3339 in UTC, always with milliseconds and `Z` (`2026-11-29T12:00:00.123Z`).

RealWorld clients require the fraction and the zone; pydantic's default drops the fraction when it is zero.
Event bodies have their own format, chrono's (`format_event_timestamp` in comm.events.timestamps: no fraction when
whole, else 3 or 6 digits), kept because a Rust producer or consumer writes and expects exactly that; hence two
functions, each named for its wire.
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def format_api_timestamp(value: datetime) -> str:
    """Milliseconds, as JavaScript writes them; a naive datetime is taken as UTC.

    `isoformat` is C; a strftime pattern took a tenth of a page's CPU (three timestamps per article)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():  # a zero offset is falsy: already UTC
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


ApiTimestamp = Annotated[datetime, PlainSerializer(format_api_timestamp, return_type=str, when_used="json")]
