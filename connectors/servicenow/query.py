"""Encoded queries (`sysparm_query`) built from data, so that data can never change a query.

ServiceNow separates query parts with a single `^`; nothing else in an encoded query can be
escaped, and `^^` as a literal caret is implemented by our sandbox but not confirmed for real
instances. So values taken from data are *validated*, not escaped:

- sys_ids must be 32 hex digits (`sys_idIN...`, reference fields);
- idempotency keys must match `[A-Za-z0-9:_.-]` (as `review.plan.ticket_key` makes them);
- any other value (an email, a name) is refused if it holds `^`, a line break, or, inside an
  `IN` list, a comma. `=` inside a value is harmless (the operator is the first one after the
  field name), so it is allowed.

A refused value raises `UnsafeQueryValue`: the caller reports the record and queries by sys_id
instead. Admin-written filters from settings are trusted and ANDed as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from connectors.errors import RequestRejected

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
TICKET_KEY = re.compile(r"^[A-Za-z0-9:_.-]{1,200}$")
FIELD = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*$")
ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"
CREATION_ORDER = "ORDERBYsys_created_on^ORDERBYsys_id"  # tables without sys_updated_on


class UnsafeQueryValue(RequestRejected):
    """A value from data that would change the meaning of an encoded query."""


def _field(name: str) -> str:
    if not FIELD.match(name):
        raise UnsafeQueryValue(
            f"{name!r} is not a ServiceNow field name",
            system="servicenow",
            hint="field names are lower-case letters, digits, '_' and '.' for dot-walks",
        )
    return name


def safe_value(value: str, *, field: str, in_list: bool = False) -> str:
    """`value` if it cannot end or split a query term, else UnsafeQueryValue naming `field`."""
    forbidden = ("^", "\n", "\r") + ((",",) if in_list else ())
    if any(char in value for char in forbidden):
        raise UnsafeQueryValue(
            f"value {value!r} for {field} holds {'a comma or ' if in_list else ''}a caret or "
            "line break and cannot be put into an encoded query",
            system="servicenow",
            hint="query this record by its sys_id instead",
        )
    return value


def sys_id(value: str, *, field: str = "sys_id") -> str:
    """A sys_id, validated: 32 lower-case hex digits."""
    if not SYS_ID.match(value):
        raise UnsafeQueryValue(
            f"{value!r} in {field} is not a sys_id (32 hex digits)",
            system="servicenow",
            hint="check the reference field or the override in config (review.people)",
        )
    return value


def ticket_key(value: str) -> str:
    """An idempotency key, validated against the characters review.plan uses."""
    if not TICKET_KEY.match(value):
        raise UnsafeQueryValue(
            f"idempotency key {value!r} has characters outside [A-Za-z0-9:_.-]",
            system="servicenow",
            hint="keys come from review.plan.ticket_key, which hashes unsafe keys",
        )
    return value


def equals(field: str, value: str) -> str:
    """`field=value` with the value checked."""
    return f"{_field(field)}={safe_value(value, field=field)}"


def one_of(field: str, values: Iterable[str]) -> str:
    """`fieldINa,b,c` with every value checked (no commas inside values)."""
    checked = [safe_value(v, field=field, in_list=True) for v in values]
    return f"{_field(field)}IN{','.join(checked)}"


def sys_ids_in(field: str, values: Iterable[str]) -> str:
    """`fieldIN<sys_id>,...`, each a validated sys_id."""
    return f"{_field(field)}IN{','.join(sys_id(v, field=field) for v in values)}"


def after(updated: str, last_id: str) -> str:
    """Rows strictly after the keyset cursor (updated, id).

    `a^b^ORc` reads `a AND (b OR c)`: ServiceNow binds `^OR` tighter than `^`. So
    `updated>=U ^ (id>I OR updated>U)` is exactly "(updated = U and id > I) or updated > U",
    with no NQ and no need to repeat the other conditions in a second query.
    """
    stamp = safe_value(updated, field="sys_updated_on")
    return f"sys_updated_on>={stamp}^sys_id>{sys_id(last_id)}^ORsys_updated_on>{stamp}"


def created_after(created: str, last_id: str) -> str:
    """Rows strictly after the keyset cursor (created, id), as `after` for sys_created_on."""
    stamp = safe_value(created, field="sys_created_on")
    return f"sys_created_on>={stamp}^sys_id>{sys_id(last_id)}^ORsys_created_on>{stamp}"


def since_stamp(updated: str) -> str:
    """Rows updated at or after a stamp (a cursor without an id: the whole second)."""
    return f"sys_updated_on>={safe_value(updated, field='sys_updated_on')}"


def not_after(updated: str) -> str:
    """The run's upper bound: rows updated at or before `updated`."""
    return f"sys_updated_on<={safe_value(updated, field='sys_updated_on')}"


def conjoin(parts: Sequence[str]) -> str:
    """AND the non-empty parts."""
    return "^".join(part for part in parts if part)


def any_of(groups: Sequence[str]) -> str:
    """OR the groups, each a whole AND query (`^NQ`, "new query"): `A^B^NQC^D` reads
    `(A AND B) OR (C AND D)`. A condition meant for every group must be in each of them."""
    if any(not group for group in groups):
        raise ValueError("an empty NQ group would match every row")
    return "^NQ".join(groups)


def ordered(condition: str) -> str:
    """The condition in keyset order (sys_updated_on, then sys_id)."""
    return conjoin([condition, ORDER])


def ordered_by_creation(condition: str) -> str:
    """The condition in creation keyset order (sys_created_on, then sys_id)."""
    return conjoin([condition, CREATION_ORDER])
