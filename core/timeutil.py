"""Times: stored as naive UTC, shown and typed in the user's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InvalidInput


def local_zone(name: str | None = None) -> ZoneInfo | None:
    """The named zone, or None for the machine's local zone."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{name!r} is not a time zone name (for example Europe/Amsterdam).") \
            from None


def parse_user_time(text: str, zone: str | None = None) -> datetime:
    """'2026-12-01 09:00' in the user's zone (or with its own offset) → naive UTC."""
    raw = (text or "").strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date and time; write it like 2026-12-01 09:00."
        ) from None
    if value.tzinfo is None:
        tz = local_zone(zone)
        value = value.replace(tzinfo=tz) if tz else value.astimezone()
    return value.astimezone(UTC).replace(tzinfo=None)


def to_user_time(value: datetime | None, zone: str | None = None) -> datetime | None:
    """Naive UTC → aware time in the user's zone (for display)."""
    if value is None:
        return None
    tz = local_zone(zone)
    aware = value.replace(tzinfo=UTC)
    return aware.astimezone(tz) if tz else aware.astimezone()


def utc_from_local(value: datetime, zone: str | None = None) -> datetime:
    """A naive time the user picked in their zone → naive UTC."""
    tz = local_zone(zone)
    aware = value.replace(tzinfo=tz) if tz else value.astimezone()
    return aware.astimezone(UTC).replace(tzinfo=None)
