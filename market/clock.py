"""Time: one place that reads the clock. Legal dates are China Standard Time (UTC+8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "CST")


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def today_cst(at: datetime | None = None) -> date:
    """The calendar date in China at ``at`` (default: now): deadlines and terms count in CST."""
    return (at or now()).astimezone(CST).date()
