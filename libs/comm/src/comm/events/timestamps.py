"""Timestamps as the seed writes them: chrono's `DateTime<Utc>` through serde (RFC 3339, `Z`, AutoSi fraction)."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})"
)


def format_event_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`; no fraction when whole, else the shortest of 3 or 6 digits that is exact."""
    utc = value.astimezone(UTC)
    whole = utc.strftime("%Y-%m-%dT%H:%M:%S")
    micros = utc.microsecond
    if micros == 0:
        return f"{whole}Z"
    if micros % 1000 == 0:
        return f"{whole}.{micros // 1000:03d}Z"
    return f"{whole}.{micros:06d}Z"


def parse_event_timestamp(value: Any) -> datetime:
    """An aware UTC datetime from RFC 3339 text as chrono's relaxed parser takes it (up to 9 fractional digits)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a UTC offset")
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError("timestamp must be an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    # Python keeps microseconds; chrono's nanoseconds are truncated, never rounded up into the next second.
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}")
    return parsed.astimezone(UTC)


Timestamp = Annotated[
    datetime, BeforeValidator(parse_event_timestamp), PlainSerializer(format_event_timestamp, return_type=str)
]
"""A `DateTime<Utc>` field: parsed leniently as chrono does, written exactly as chrono does."""
