"""Every transform against the formats the real tools send (recorded ServiceNow, JSM examples)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mapping.transforms import ArgumentError, TransformContext, build_transform, resolve_timezone


def transform(name: str, timezone: str = "UTC", **args: Any) -> Any:
    return build_transform(name, args, TransformContext(resolve_timezone(timezone)))


def test_servicenow_datetimes_read_as_utc(recorded_incidents: list[dict[str, Any]]) -> None:
    """A recorded incident's `opened_at` ("2016-12-12 15:19:57") becomes that instant in UTC."""
    parse = transform("datetime")
    first = recorded_incidents[0]
    assert first["opened_at"] == "2016-12-12 15:19:57"
    assert parse(first["opened_at"]) == datetime(2016, 12, 12, 15, 19, 57, tzinfo=UTC)
    assert all(parse(row["sys_updated_on"]).tzinfo is UTC for row in recorded_incidents)


def test_servicenow_datetimes_in_a_configured_zone() -> None:
    """With timezone Europe/Berlin, a winter ServiceNow time is one hour ahead of UTC."""
    parse = transform("datetime", timezone="Europe/Berlin")
    assert parse("2016-12-12 15:19:57") == datetime(2016, 12, 12, 14, 19, 57, tzinfo=UTC)


def test_jsm_datetimes_iso_jira_and_epoch(jsm_sla_example: dict[str, Any]) -> None:
    """JSM's iso8601, jira (+0700 without colon), epochMillis and whole date objects all agree."""
    parse = transform("datetime")
    start = jsm_sla_example["values"][0]["completedCycles"][0]["startTime"]
    expected = datetime(2015, 10, 9, 3, 45, 23, tzinfo=UTC)
    assert parse(start["iso8601"]) == expected
    assert parse(start["jira"]) == expected
    assert parse(start["epochMillis"]) == expected
    assert parse(str(start["epochMillis"])) == expected
    assert parse(start) == expected


def test_unreadable_datetime_names_the_value() -> None:
    """A value that is no date fails with the value in the reason."""
    with pytest.raises(ValueError, match="not a date and time: 'yesterday'"):
        transform("datetime")("yesterday")


def test_servicenow_durations_count_days_past_the_epoch(
    recorded_incidents: list[dict[str, Any]],
) -> None:
    """ServiceNow durations: "1970-01-01 08:00:00" is 8 h, "1970-01-02 04:23:17" is 1 d 4:23:17."""
    parse = transform("duration")
    first = recorded_incidents[0]
    assert parse(first["business_duration"]) == timedelta(hours=8)
    assert parse(first["calendar_duration"]) == timedelta(days=1, hours=4, minutes=23, seconds=17)


def test_jsm_and_iso_durations(jsm_sla_example: dict[str, Any]) -> None:
    """JSM goal millis (14400000), `{millis}` objects and ISO 8601 `PT4H` are all four hours."""
    parse = transform("duration")
    goal = jsm_sla_example["values"][0]["completedCycles"][0]["goalDuration"]
    assert parse(goal["millis"]) == timedelta(hours=4)
    assert parse(goal) == timedelta(hours=4)
    assert parse("PT4H") == timedelta(hours=4)
    assert parse("P1DT2H") == timedelta(days=1, hours=2)
    assert parse("14400000") == timedelta(hours=4)
    assert transform("duration", unit="s")(90) == timedelta(seconds=90)


def test_negative_jsm_remaining_time(jsm_sla_example: dict[str, Any]) -> None:
    """A breached cycle's negative remaining time (-4980000 ms) stays negative."""
    remaining = jsm_sla_example["values"][0]["completedCycles"][1]["remainingTime"]
    assert transform("duration")(remaining) == -timedelta(minutes=83)


def test_unreadable_duration_fails() -> None:
    """Text that is no duration fails with the value in the reason."""
    with pytest.raises(ValueError, match="not a duration"):
        transform("duration")("four hours")


def test_percent() -> None:
    """Percentages read as 0..100; fractions scale; out-of-range values fail."""
    assert transform("percent")("99.9") == 99.9
    assert transform("percent")("95 %") == 95.0
    assert transform("percent", scale="fraction")(0.999) == pytest.approx(99.9)
    with pytest.raises(ValueError, match="out of range"):
        transform("percent")("120")
    with pytest.raises(ValueError, match="not a percentage"):
        transform("percent")("high")


def test_boolean_from_servicenow_strings(recorded_incidents: list[dict[str, Any]]) -> None:
    """`made_sla` "true"/"false" of real incidents read as booleans; 1/0 and bools too."""
    parse = transform("boolean")
    values = {parse(row["made_sla"]) for row in recorded_incidents}
    assert values <= {True, False} and True in values
    assert (parse("1"), parse("0"), parse(True), parse("FALSE")) == (True, False, True, False)
    with pytest.raises(ValueError, match="not a boolean"):
        parse("maybe")


def test_number() -> None:
    """Numeric strings become floats, or ints when asked; others fail."""
    assert transform("number")("4") == 4.0
    assert transform("number", type="int")("3") == 3
    with pytest.raises(ValueError, match="not a whole number"):
        transform("number", type="int")("3.5")
    with pytest.raises(ValueError, match="not a number"):
        transform("number")("three")


def test_enum_priority_names(recorded_incidents: list[dict[str, Any]]) -> None:
    """Priority codes 1-5 become names; unknown codes take the default, or fail without one."""
    names = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", 5: "5 - P"}
    lookup = transform("enum", values=names)
    assert lookup(recorded_incidents[0]["priority"]) == "3 - Moderate"
    assert lookup("5") == "5 - P"
    assert transform("enum", values=names, default="unknown")("9") == "unknown"
    with pytest.raises(ValueError, match="unknown value '9'"):
        lookup("9")
    assert transform("enum", values={"SLA": 1}, ignore_case=True)("sla") == 1


def test_reference_value_or_display_value(
    recorded_incidents: list[dict[str, Any]], recorded_change_display_all: dict[str, Any]
) -> None:
    """Reference objects give their value (sys_id) or display value; plain ids pass through."""
    caller = recorded_incidents[0]["caller_id"]
    assert transform("reference")(caller) == "681ccaf9c0a8016400b98a06818d57c7"
    parent = recorded_change_display_all["parent"]
    assert transform("reference", use="display_value")(parent) == "PRB0000006"
    assert transform("reference")("abc") == "abc"


def test_split() -> None:
    """Comma lists (ServiceNow watch_list) split into trimmed items; lists pass through."""
    assert transform("split")("a, b,,c") == ["a", "b", "c"]
    assert transform("split", separator="|")("a|b") == ["a", "b"]
    assert transform("split")(["x"]) == ["x"]


def test_regex_and_constant() -> None:
    """A regex takes its group (or the default); a constant ignores the source."""
    extract = transform("regex", pattern=r"priority=(\d)", default=None)
    assert extract("business_service=abc^priority=2") == "2"
    assert extract("business_service=abc") is None
    assert transform("constant", value=5)("anything") == 5


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("datetime", {"timezone": "Mars/Olympus"}, "unknown timezone"),
        ("duration", {"unit": "h"}, "unit must be ms or s"),
        ("enum", {}, "values must be a non-empty mapping"),
        ("regex", {"pattern": "("}, "invalid pattern"),
        ("regex", {"pattern": "no group"}, "exactly one"),
        ("boolean", {"strict": True}, "unknown arg 'strict'"),
        ("constant", {}, "value is required"),
        ("lowercase", {}, "unknown transform 'lowercase' (known: boolean, constant"),
    ],
)
def test_bad_transform_args_are_refused(name: str, args: dict[str, Any], message: str) -> None:
    """Wrong transform names or args fail when the mapping is built, never per record."""
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(")):
        transform(name, **args)
