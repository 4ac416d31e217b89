"""What people wrote on tasks: work notes and additional comments, read from `sys_journal_field`.

A task's journal fields hold nothing readable by value (the Table API returns "" for
`work_notes` and `comments`, and by display value one text of every entry). Each entry is a row
of the stock table `sys_journal_field`: `element` (work_notes / comments), `element_id` (the
task's sys_id), `value`, `sys_created_on`, `sys_created_by` (the writer's `user_name`).

The table has no `sys_updated_on` (entries are never changed), so it is read in keyset order
of (sys_created_on, sys_id), one query per chunk of tasks, stopping on an empty page. Times are
read with `sysparm_display_value=false`: UTC, whatever the integration user's time zone. Writers
are named by e-mail where their `sys_user` has one (one `user_nameIN...` lookup per batch of new
names, cached), else by user name. Reading the table needs a read ACL on `sys_journal_field`
(admin has it; grant the integration user's role read on the table otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.errors import ConnectorError
from connectors.servicenow import query
from connectors.servicenow.client import SYSTEM, Record, TableClient, log
from connectors.servicenow.guard import Guard

JOURNAL_TABLE = "sys_journal_field"
ELEMENTS = ("work_notes", "comments")
FIELDS = ("sys_id", "element_id", "element", "value", "sys_created_on", "sys_created_by")
STAMP = "%Y-%m-%d %H:%M:%S"
TASKS_PER_QUERY = 50


@dataclass(frozen=True)
class JournalEntry:
    """One work note or additional comment: on which task, by whom (user_name), when (UTC)."""

    task: str  # the task's sys_id
    element: str
    text: str
    created: datetime
    user_name: str


@dataclass
class JournalReader:
    """Reads journal entries of many tasks in few requests, and who wrote them."""

    client: TableClient
    guard: Guard
    page_size: int = 1000
    users_table: str = "sys_user"
    _emails: dict[str, str] = field(default_factory=dict)  # user_name -> e-mail ("" = none)

    def entries(self, task_ids: Sequence[str]) -> dict[str, list[JournalEntry]]:
        """Entries of each task (by sys_id), oldest first; one keyset-paged query per 50."""
        found: dict[str, list[JournalEntry]] = {task: [] for task in task_ids}
        ids = list(dict.fromkeys(task_ids))
        for start in range(0, len(ids), TASKS_PER_QUERY):
            for row in self._rows(ids[start : start + TASKS_PER_QUERY]):
                entry = _entry(row)
                if entry is not None and entry.task in found:
                    found[entry.task].append(entry)
        return found

    def email(self, user_name: str) -> str:
        """The e-mail of the user with this user_name, else the user_name ("" stays "")."""
        return self._emails.get(user_name) or user_name

    def learn_emails(self, user_names: Iterable[str]) -> None:
        """Look up the e-mails of writers not seen yet (one query per 100 names)."""
        wanted = [n for n in dict.fromkeys(user_names) if n and n not in self._emails and _safe(n)]
        for start in range(0, len(wanted), 100):
            batch = wanted[start : start + 100]
            result = self.guard.call(
                lambda b=batch: self.client.list(  # type: ignore[misc]
                    self.users_table,
                    query=query.one_of("user_name", b),
                    fields=("sys_id", "user_name", "email"),
                    limit=len(b) * 2,
                ),
                what=f"table {self.users_table}",
            )
            self._emails.update({name: "" for name in batch})
            for row in result.records:
                name = str(row.get("user_name", ""))
                if name in self._emails and not self._emails[name]:
                    self._emails[name] = str(row.get("email") or "")

    def _rows(self, task_ids: Sequence[str]) -> Iterator[Record]:
        """Rows of one query, page after page in (sys_created_on, sys_id) order."""
        base = query.conjoin(
            [query.sys_ids_in("element_id", task_ids), query.one_of("element", ELEMENTS)]
        )
        cursor: tuple[str, str] | None = None
        while True:
            condition = query.conjoin([base, _after(cursor)])
            result = self.guard.call(
                lambda c=condition: self.client.list(  # type: ignore[misc]
                    JOURNAL_TABLE, query=query.ordered_by_creation(c), fields=FIELDS,
                    limit=self.page_size,
                ),
                what=f"table {JOURNAL_TABLE}",
            )  # fmt: skip
            if not result.records:
                return
            yield from result.records
            cursor = _advance(cursor, result.records)


def _after(cursor: tuple[str, str] | None) -> str:
    return "" if cursor is None else query.created_after(*cursor)


Cursor = tuple[str, str]  # (sys_created_on, sys_id) of the last row read


def _advance(cursor: Cursor | None, rows: Sequence[Mapping[str, object]]) -> Cursor:
    """The keyset cursor after `rows`; a page that does not move it stops the read."""
    last = rows[-1]
    moved = (str(last.get("sys_created_on") or ""), str(last.get("sys_id") or ""))
    if not moved[0] or not query.SYS_ID.match(moved[1]) or (cursor and moved <= cursor):
        raise ConnectorError(
            f"{SYSTEM}: table {JOURNAL_TABLE} returned a page without sys_id or sys_created_on "
            f"after {cursor}; paging cannot advance",
            system=SYSTEM,
            hint=f"give the integration user read access to {JOURNAL_TABLE} (all fields)",
        )
    return moved


def _entry(row: Mapping[str, object]) -> JournalEntry | None:
    try:
        created = datetime.strptime(str(row.get("sys_created_on", "")), STAMP).replace(tzinfo=UTC)
    except ValueError:
        log.warning("servicenow.journal_unreadable_time", sys_id=row.get("sys_id"))
        return None
    return JournalEntry(
        task=str(row.get("element_id", "")),
        element=str(row.get("element", "")),
        text=str(row.get("value") or "").replace("\r\n", "\n").strip(),
        created=created,
        user_name=str(row.get("sys_created_by") or ""),
    )


def _safe(value: str) -> bool:
    return not any(char in value for char in "^,\n\r")
