"""Timestamps in API bodies: RFC 3339 in UTC, always with milliseconds and `Z` (`2026-11-29T12:00:00.123Z`).

RealWorld clients require the fraction and the zone; pydantic's default drops the fraction when it is zero.
(Event bodies have their own format, chrono's: comm.events.timestamps.)
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer


def format_timestamp(value: datetime) -> str:
    """Milliseconds, as JavaScript writes them; a naive datetime is taken as UTC."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


ApiTimestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str, when_used="json")]
