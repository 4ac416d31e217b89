"""The Jira stand-in's mutable state: issues, comments, watchers, attachments and links.

The store also plays the search index. Every change queues a copy of the issue that reaches the
index ``index_lag`` seconds later, as Jira's index does; a GET by key sees the change at once.
With ``lag_everything`` (real Jira) search finds a new issue only once its first copy arrived
and shows every field as the index has it; without, only labels lag (search matches the index's
labels) and everything else is read live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
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
    resolved: datetime | None = None  # resolutiondate: set entering a done status, cleared leaving
    # The search index's copy (None: not indexed yet) and copies on their way, by arrival time.
    indexed: StoredIssue | None = field(default=None, repr=False)
    pending: list[tuple[float, StoredIssue]] = field(default_factory=list, repr=False)

    @property
    def labels(self) -> list[str]:
        return list(self.fields.get("labels") or [])

    @property
    def parent_key(self) -> str | None:
        parent = self.fields.get("parent")
        return str(parent) if parent else None

    def snapshot(self) -> StoredIssue:
        """A copy as the index keeps it (fields and lists copied; their items are not mutated)."""
        return replace(
            self,
            fields=dict(self.fields),
            comments=list(self.comments),
            watchers=list(self.watchers),
            attachments=list(self.attachments),
            remote_links=list(self.remote_links),
            indexed=None,
            pending=[],
        )


class JiraStore:
    """Issues by key and id, with monotonic ids and the lagging search index."""

    def __init__(
        self,
        clock: Callable[[], float],
        index_lag: Callable[[], float],
        lag_everything: Callable[[], bool] = lambda: True,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.index_lag = index_lag
        self.lag_everything = lag_everything
        self.issues: dict[str, StoredIssue] = {}
        self.by_id: dict[int, StoredIssue] = {}
        self.links: list[IssueLink] = []
        self.project_counters: dict[str, int] = {}
        self.moved: dict[str, str] = {}  # old key -> new key of issues moved to another project
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
        self.reindex(issue, lag=0.0 if seeded else None)
        return issue

    def move(self, issue: StoredIssue, project: str) -> str:
        """Move the issue to another project, as a person does: it gets that project's next key,
        its old key keeps answering (GET, JQL `key =` / `key in`) for the moved issue, its links
        follow it, and it is updated. Returns the new key."""
        number = self.project_counters.get(project, 0) + 1
        self.project_counters[project] = number
        old, new = issue.key, f"{project}-{number}"
        self.issues.pop(old)
        issue.key, issue.project = new, project
        self.issues[new] = issue
        self.moved[old] = new
        for link in self.links:
            link.inward_key = new if link.inward_key == old else link.inward_key
            link.outward_key = new if link.outward_key == old else link.outward_key
        self.touch(issue)
        return new

    def resolve(self, key: str) -> str:
        """The issue's key now (a moved issue's old keys lead to its new one)."""
        seen = 0
        while key in self.moved and seen < 100:
            key, seen = self.moved[key], seen + 1
        return key

    def remove(self, issue: StoredIssue) -> None:
        """Delete the issue and its links (the issues at their other end are not touched:
        their `updated` stays, so an incremental search does not return them)."""
        self.issues.pop(issue.key, None)
        self.by_id.pop(issue.id, None)
        self.links = [
            link for link in self.links if issue.key not in (link.inward_key, link.outward_key)
        ]

    def find(self, id_or_key: str) -> StoredIssue | None:
        if id_or_key.isdigit():
            return self.by_id.get(int(id_or_key))
        return self.issues.get(self.resolve(id_or_key.upper()))

    def touch(self, issue: StoredIssue) -> None:
        """The issue changed: a new `updated` time, and a copy on its way to the index."""
        issue.updated = datetime.now(UTC)
        self.reindex(issue)

    def reindex(self, issue: StoredIssue, lag: float | None = None) -> None:
        """Queue the issue as it is now for the index (at once if the lag is 0)."""
        delay = self.index_lag() if lag is None else lag
        if delay <= 0:
            issue.indexed, issue.pending = issue.snapshot(), []
        else:
            issue.pending.append((self.clock() + delay, issue.snapshot()))

    def search_view(
        self, fresh_ids: frozenset[int] = frozenset()
    ) -> Iterator[tuple[SearchDoc, StoredIssue]]:
        """What search sees now: (index entry, issue to render) for each issue it finds.

        Issues in ``fresh_ids`` are read through the lag (Cloud's ``reconcileIssues``), by
        this search alone: the index itself is not brought up to date (a later search without
        them still sees them as the index holds them).
        """
        now, everything = self.clock(), self.lag_everything()
        for issue in self.issues.values():
            while issue.pending and issue.pending[0][0] <= now:
                issue.indexed = issue.pending.pop(0)[1]
            if issue.id in fresh_ids:
                yield _doc(issue, tuple(issue.labels)), issue
                continue
            seen = issue.indexed if everything else issue
            if seen is None:
                continue
            labels = issue.indexed.labels if issue.indexed is not None else []
            yield _doc(seen, tuple(labels)), seen

    def created(self) -> Iterator[StoredIssue]:
        """Issues created through the API (not the seeded ones)."""
        return (issue for issue in self.issues.values() if not issue.seeded)


def _doc(issue: StoredIssue, labels: tuple[str, ...]) -> SearchDoc:
    return SearchDoc(
        issue.id,
        issue.key,
        issue.project,
        issue.issuetype_id,
        labels,
        issue.parent_key,
        issue.created,
        issue.updated,
    )
