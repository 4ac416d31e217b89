"""When an SLA record was decided, as the text the mirror's `decided` column holds.

A record counts in the month it was decided: when it stopped, or, for a running clock that has
already breached, when it started (`review.attainment._decided_at`). The column keeps that
moment in UTC with a fixed width, so `period.start <= decided < period.end` is a text range.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_UTC_OFFSET = timedelta(0)


def moment_text(moment: datetime) -> str:
    """`moment` in UTC as fixed-width text (a naive moment is taken as UTC)."""
    if moment.tzinfo is not None:
        if moment.utcoffset() != _UTC_OFFSET:  # most are UTC already: no conversion then
            moment = moment.astimezone(UTC)
        moment = moment.replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")  # FORMAT, without strftime's cost


def decided_moment(
    start: datetime | None, stop: datetime | None, breached: bool | None
) -> datetime | None:
    """The stop, else the start of a breached running clock, else None (not decided)."""
    if stop is not None:
        return stop
    return start if breached else None


def decided_text(body: Mapping[str, Any]) -> str | None:
    """The `decided` column of an SLA record's mirrored body (JSON values or datetimes)."""
    moment = decided_moment(_moment(body.get("start")), _moment(body.get("stop")),
                            bool(body.get("breached")))  # fmt: skip
    return None if moment is None else moment_text(moment)


def decided_month(body: Mapping[str, Any]) -> str | None:
    """The month (in the record's own offset, as attainment counts it) its body was decided."""
    moment = decided_moment(_moment(body.get("start")), _moment(body.get("stop")),
                            bool(body.get("breached")))  # fmt: skip
    return None if moment is None else month_text(moment)


def month_text(moment: datetime) -> str:
    """`YYYY-MM` of `moment` in its own offset."""
    return f"{moment.year:04d}-{moment.month:02d}"


def _moment(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
