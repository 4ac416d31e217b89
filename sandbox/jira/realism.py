"""Where the Jira stand-in is as unkind as real Jira: one knob each, defaults as a real site.

- ``lag_everything`` (on): search finds a new issue, and sees a change to any field, only
  after the index lag (``Knobs.index_lag_ms``); off: only labels lag, new issues show at once.
- ``time_zone`` (``"UTC"``): the integration user's ``timeZone`` (``/myself``); JQL date
  literals (``"2026-01-01 10:00"``) are read as wall time in it.
- ``assignable_check`` (on): an assignee without the *Assignable user* permission is refused
  with 400 on create and edit (``User '<id>' cannot be assigned issues.``).
- ``issue_write_limits`` (``((20, 2.0), (100, 30.0))``, Cloud): writes to one issue beyond
  ``count`` per ``seconds`` answer 429 with ``RateLimit-Reason: jira-per-issue-on-write``;
  ``()`` turns the limit off.
- ``text_limit`` (32767): a longer text field or comment is refused with 400.
- ``denied_permissions`` (none): project permission keys ``/mypermissions`` reports as not held.
- ``embedded_comments`` (20): the ``comment`` field of an issue (GET issue, search results)
  embeds at most this many comments, the oldest, with ``total`` saying how many there are; a
  client reads the rest with GET ``issue/{key}/comment``.
- ``media_attachments`` (on): a v3 description whose media node shows an attachment by its
  content URL (``/rest/api/3/attachment/content/{id}``) is refused with 400 unless that
  attachment is on the issue (an image that would show nothing in Jira's viewer).
- ``comment_page_max`` (100): GET ``issue/{key}/comment`` returns at most this many comments
  per page, whatever ``maxResults`` asks for (Cloud caps its pages; Data Center returns all
  when ``maxResults`` is not given).
- ``link_changes_touch`` (on): creating or deleting an issue link changes both issues'
  ``updated`` (Jira writes a "Link" entry into each one's history); off: neither changes, so
  only a read of the links themselves shows a removed one.

Tests and the demo change them in process: ``sandbox.jira.realism.update({"time_zone": ...})``.
The ``time_zone`` default is UTC so that a client that writes UTC stays right by accident; set
a zone west of UTC (``America/Los_Angeles``) to catch a client that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["PER_ISSUE_REASON", "TEXT_TOO_LONG", "JiraRealism"]

PER_ISSUE_REASON = "jira-per-issue-on-write"
TEXT_TOO_LONG = (
    "The entered text is too long. It exceeds the allowed limit of {limit:,} characters."
)


@dataclass
class JiraRealism:
    """The stand-in's unkind behaviours; `update` changes them at run time."""

    lag_everything: bool = True
    time_zone: str = "UTC"
    assignable_check: bool = True
    issue_write_limits: tuple[tuple[int, float], ...] = ((20, 2.0), (100, 30.0))
    text_limit: int = 32767
    denied_permissions: frozenset[str] = field(default_factory=frozenset)
    embedded_comments: int = 20
    comment_page_max: int = 100
    media_attachments: bool = True
    link_changes_touch: bool = True

    def __post_init__(self) -> None:
        self.zone = _zone(self.time_zone)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply `changes` (knob name -> value); an unknown knob or zone raises ValueError."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown Jira knob(s): {', '.join(sorted(unknown))}")
        zone = _zone(str(changes.get("time_zone", self.time_zone)))
        for name, value in changes.items():
            if name == "issue_write_limits":
                value = tuple((int(count), float(seconds)) for count, seconds in value or ())
            elif name == "denied_permissions":
                value = frozenset(str(key) for key in value or ())
            setattr(self, name, value)
        self.zone = zone


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time_zone {name!r}: expected an IANA zone such as 'America/Los_Angeles'"
        ) from None
