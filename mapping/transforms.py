"""The fixed registry of named transforms a mapping field may apply to its source value.

Each transform is built once at load time from its `args` (bad args are a config error, raised as
`ArgumentError`) and then applied per record as a plain function. A value the transform cannot
read raises `ValueError` with a reason the skip report shows. Missing values (None, "") never
reach a transform: the field's default applies first.

- datetime: ServiceNow `YYYY-MM-DD HH:MM:SS` (in the file's `timezone`, default UTC), ISO 8601
  with offset (also Jira's `+0000`), epoch ms, JSM `{epochMillis}` objects. Args: `timezone`.
- duration: ServiceNow `1970-01-01 HH:MM:SS` (days past the epoch count), numbers in `unit`
  (ms, the default, or s), ISO 8601 `PT4H`, JSM `{millis}` objects.
- percent: `99.9`, `"99.9 %"`, within 0..100. Args: `scale` percent (default) or fraction.
- boolean: true/false, 1/0, yes/no in any case, booleans.
- number: ints, floats, numeric strings. Args: `type` float (default) or int.
- enum: a lookup table. Args: `values`, `default` (for unknown values; else they fail),
  `ignore_case`.
- reference: `{value, display_value, link}` objects or plain ids. Args: `use` value (default)
  or display_value.
- split: `"a, b,c"` into a list; lists pass through. Args: `separator` (default `,`).
- regex: the first group of `pattern`; no match takes `default` if given, else fails.
- constant: `value`, whatever the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import TypeAdapter, ValidationError

Transform = Callable[[Any], Any]
_EPOCH = datetime(1970, 1, 1)
_NO_DEFAULT = object()
_TIMEDELTA = TypeAdapter(timedelta)


class ArgumentError(Exception):
    """A transform's args are wrong; `key` names the offending arg, if one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class TransformContext:
    """What a mapping file sets for all its transforms."""

    timezone: tzinfo = UTC


Factory = Callable[[Mapping[str, Any], TransformContext], Transform]


def resolve_timezone(name: str) -> tzinfo:
    """An IANA zone by name (`UTC`, `Europe/Berlin`); ArgumentError if unknown."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ArgumentError(
            f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


def _allowed(args: Mapping[str, Any], *names: str) -> None:
    for key in args:
        if key not in names:
            known = ", ".join(names) if names else "none"
            raise ArgumentError(f"unknown arg {key!r} (known: {known})", key)


def _datetime(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "timezone")
    zone = resolve_timezone(str(args["timezone"])) if "timezone" in args else ctx.timezone

    def parse(value: Any) -> datetime:
        if type(value) is str and value[:1].isdigit() and not value.isdigit():
            try:  # the common case first: one C call for ServiceNow and ISO text
                moment = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    return moment.replace(tzinfo=zone).astimezone(UTC)
                return moment.astimezone(UTC)
        if isinstance(value, Mapping):  # JSM date objects: {iso8601, jira, epochMillis}
            value = value.get("epochMillis", value.get("iso8601"))
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
        text = str(value).strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date and time: {text!r}") from None
        if moment.tzinfo is None:  # ServiceNow's API times carry no zone: the file's zone
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(UTC)

    return parse


def _duration(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "unit")
    unit = str(args.get("unit", "ms"))
    if unit not in ("ms", "s"):
        raise ArgumentError(f"unit must be ms or s, not {unit!r}", "unit")
    per_unit = 1000.0 if unit == "ms" else 1.0

    def parse(value: Any) -> timedelta:
        if type(value) is str and value[:4] == "1970":
            try:  # the common case first: ServiceNow's epoch-based durations
                return datetime.fromisoformat(value) - _EPOCH
            except ValueError:
                pass
        if isinstance(value, Mapping):  # JSM durations: {millis, friendly}
            return timedelta(milliseconds=float(value["millis"]))
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value / per_unit)
        text = str(value).strip()
        if text[:1] == "P" or text[:2] == "-P":
            try:
                return _TIMEDELTA.validate_python(text)
            except ValidationError:
                raise ValueError(f"not an ISO 8601 duration: {text!r}") from None
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text) / per_unit)
        try:  # ServiceNow stores a duration as the epoch plus the duration
            return datetime.fromisoformat(text) - _EPOCH
        except ValueError:
            raise ValueError(f"not a duration: {text!r}") from None

    return parse


def _percent(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "scale")
    scale = str(args.get("scale", "percent"))
    if scale not in ("percent", "fraction"):
        raise ArgumentError(f"scale must be percent or fraction, not {scale!r}", "scale")
    factor = 100.0 if scale == "fraction" else 1.0

    def parse(value: Any) -> float:
        text = str(value).strip().rstrip("%").strip()
        try:
            number = float(text) * factor
        except ValueError:
            raise ValueError(f"not a percentage: {value!r}") from None
        if not 0 <= number <= 100:
            raise ValueError(f"percentage out of range 0..100: {value!r}")
        return number

    return parse


_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def _boolean(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args)

    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"not a boolean (true/false, 1/0): {value!r}")

    return parse


def _number(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "type")
    kind = str(args.get("type", "float"))
    if kind not in ("float", "int"):
        raise ArgumentError(f"type must be float or int, not {kind!r}", "type")

    def parse(value: Any) -> float | int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"not a number: {value!r}") from None
        if kind == "int":
            if not number.is_integer():
                raise ValueError(f"not a whole number: {value!r}")
            return int(number)
        return number

    return parse


def _enum(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "values", "default", "ignore_case")
    values = args.get("values")
    if not isinstance(values, Mapping) or not values:
        raise ArgumentError(
            "values must be a non-empty mapping of source value -> result", "values"
        )
    fold = bool(args.get("ignore_case", False))
    table = {_enum_key(k, fold): v for k, v in values.items()}
    fallback = args.get("default", _NO_DEFAULT)
    known = ", ".join(repr(k) for k in list(values)[:8])

    def lookup(value: Any) -> Any:
        found = table.get(_enum_key(value, fold), _NO_DEFAULT)
        if found is not _NO_DEFAULT:
            return found
        if fallback is not _NO_DEFAULT:
            return fallback
        raise ValueError(f"unknown value {value!r} (known: {known})")

    return lookup


def _enum_key(value: Any, fold: bool) -> str:
    # YAML reads `1:` as an int and the source sends "1": compare as text.
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text.casefold() if fold else text


def _reference(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "use")
    use = str(args.get("use", "value"))
    if use not in ("value", "display_value"):
        raise ArgumentError(f"use must be value or display_value, not {use!r}", "use")

    def read(value: Any) -> Any:
        if isinstance(value, Mapping):
            picked = value.get(use)
            if picked is None:
                raise ValueError(f"reference has no {use!r}: {dict(value)!r}")
            return picked
        return value

    return read


def _split(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "separator")
    separator = args.get("separator", ",")
    if not isinstance(separator, str) or not separator:
        raise ArgumentError("separator must be a non-empty string", "separator")

    def split(value: Any) -> list[Any]:
        if isinstance(value, list | tuple):
            return list(value)
        return [part.strip() for part in str(value).split(separator) if part.strip()]

    return split


def _regex(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "pattern", "default")
    try:
        pattern = re.compile(str(args["pattern"]))
    except KeyError:
        raise ArgumentError("pattern is required (a regular expression with one group)") from None
    except re.error as exc:
        raise ArgumentError(f"invalid pattern: {exc}", "pattern") from None
    if pattern.groups != 1:
        raise ArgumentError("pattern must have exactly one (group)", "pattern")
    fallback = args.get("default", _NO_DEFAULT)

    def extract(value: Any) -> Any:
        match = pattern.search(str(value))
        if match is not None:
            return match.group(1)
        if fallback is not _NO_DEFAULT:
            return fallback
        raise ValueError(f"{pattern.pattern!r} does not match {value!r}")

    return extract


def _constant(args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    _allowed(args, "value")
    if "value" not in args:
        raise ArgumentError("value is required")
    constant = args["value"]
    return lambda _value: constant


REGISTRY: dict[str, Factory] = {
    "datetime": _datetime,
    "duration": _duration,
    "percent": _percent,
    "boolean": _boolean,
    "number": _number,
    "enum": _enum,
    "reference": _reference,
    "split": _split,
    "regex": _regex,
    "constant": _constant,
}
# Transforms that produce a value without reading the source: the field needs no `source`.
SOURCELESS = frozenset({"constant"})


def build_transform(name: str, args: Mapping[str, Any], ctx: TransformContext) -> Transform:
    """The transform `name` built from `args`; ArgumentError if either is wrong."""
    factory = REGISTRY.get(name)
    if factory is None:
        raise ArgumentError(f"unknown transform {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return factory(args, ctx)


def chain(steps: list[Transform]) -> Transform:
    """Apply `steps` in order; a step's None ends the chain (the value is missing)."""
    if len(steps) == 1:
        return steps[0]

    def run(value: Any) -> Any:
        for step in steps:
            value = step(value)
            if value is None:
                return None
        return value

    return run
