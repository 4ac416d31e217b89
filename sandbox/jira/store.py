"""The Jira stand-in's mutable state: issues, comments, watchers, attachments and links.

The store also plays the search index: what JQL sees of an issue's labels lags behind the issue
by ``index_lag`` seconds after each change, as Jira's index does; a GET by key sees the change
at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.jira.jql import SearchDoc

__all__ = [
    "Attachment",
    "Comment",
    "IssueLink",
    "JiraStore",
    "RemoteLink",
    "StoredIssue",
]


@dataclass
class Comment:
    id: int
    author: str  # account id
    body: Any  # ADF dict (written through v3) or wiki string (written through v2)
    created: datetime
    properties: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Attachment:
    id: int
    filename: str
    size: int
    mime_type: str
    author: str
    created: datetime
    content: bytes = b""


@dataclass
class RemoteLink:
    id: int
    global_id: str | None
    relationship: str | None
    application: dict[str, Any] | None
    object: dict[str, Any]


@dataclass
class IssueLink:
    id: int
    type_id: str
    inward_key: str
    outward_key: str


@dataclass
class StoredIssue:
    """One issue; ``fields`` holds the settable values as written (users as account ids)."""

    id: int
    key: str
    project: str
    issuetype_id: str
    status_id: str
    created: datetime
    updated: datetime
    fields: dict[str, Any]
    comments: list[Comment] = field(default_factory=list)
    watchers: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    remote_links: list[RemoteLink] = field(default_factory=list)
    seeded: bool = False
    # The search index's view of the labels and when the current labels reach it.
    indexed_labels: tuple[str, ...] = ()
    labels_indexed_at: float = 0.0

    @property
    def labels(self) -> list[str]:
        return list(self.fields.get("labels") or [])

    @property
    def parent_key(self) -> str | None:
        parent = self.fields.get("parent")
        return str(parent) if parent else None


class JiraStore:
    """Issues by key and id, with monotonic ids and the lagging label index."""

    def __init__(self, clock: Callable[[], float], index_lag: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.index_lag = index_lag
        self.issues: dict[str, StoredIssue] = {}
        self.by_id: dict[int, StoredIssue] = {}
        self.links: list[IssueLink] = []
        self.project_counters: dict[str, int] = {}
        self._next_id = 10000
        self._next_child_id = 10000

    def next_child_id(self) -> int:
        """An id for a comment, attachment or link (one sequence, like Jira's)."""
        self._next_child_id += 1
        return self._next_child_id

    def add(
        self,
        project: str,
        issuetype_id: str,
        status_id: str,
        fields: dict[str, Any],
        *,
        at: datetime | None = None,
        updated: datetime | None = None,
        seeded: bool = False,
    ) -> StoredIssue:
        created = at or datetime.now(UTC)
        number = self.project_counters.get(project, 0) + 1
        self.project_counters[project] = number
        self._next_id += 1
        issue = StoredIssue(
            self._next_id,
            f"{project}-{number}",
            project,
            issuetype_id,
            status_id,
            created,
            updated or created,
            fields,
            seeded=seeded,
        )
        self.issues[issue.key] = issue
        self.by_id[issue.id] = issue
        self._labels_changed(issue, lag=0.0 if seeded else None)
        return issue

    def find(self, id_or_key: str) -> StoredIssue | None:
        if id_or_key.isdigit():
            return self.by_id.get(int(id_or_key))
        return self.issues.get(id_or_key.upper())

    def touch(self, issue: StoredIssue, *, labels_changed: bool = False) -> None:
        issue.updated = datetime.now(UTC)
        if labels_changed:
            self._labels_changed(issue)

    def _labels_changed(self, issue: StoredIssue, lag: float | None = None) -> None:
        delay = self.index_lag() if lag is None else lag
        issue.labels_indexed_at = self.clock() + delay
        if delay <= 0:
            issue.indexed_labels = tuple(issue.labels)

    def search_docs(self, fresh_ids: frozenset[int] = frozenset()) -> Iterator[SearchDoc]:
        """What the index holds now; issues in ``fresh_ids`` are read through (reconcileIssues)."""
        now = self.clock()
        for issue in self.issues.values():
            if issue.id in fresh_ids or now >= issue.labels_indexed_at:
                issue.indexed_labels = tuple(issue.labels)
            yield SearchDoc(
                issue.id,
                issue.key,
                issue.project,
                issue.issuetype_id,
                issue.indexed_labels,
                issue.parent_key,
                issue.created,
                issue.updated,
            )

    def created(self) -> Iterator[StoredIssue]:
        """Issues created through the API (not the seeded ones)."""
        return (issue for issue in self.issues.values() if not issue.seeded)
