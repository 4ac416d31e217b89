"""People of the review model as `sys_user` records: by source ref, config override, or email.

A `Person` read from ServiceNow carries its sys_id (`source`); others (from Jira, from config)
are matched by email: `review.people` overrides first, then one `emailIN...` lookup per batch of
unknown emails, cached. An email that cannot go into a query safely (caret, comma) or that no
user has is not an error: the task stays unassigned and the person is watched by email, which
`watch_list` accepts for people without an account.

A lookup that fails (unreadable answer, 5xx or 429 after the retry policy gave up) fails only the
people of that batch, and only for this cycle: they get no sys_id (and are watched by email), are
not remembered as "no user", are logged once (`servicenow.person_lookup_failed`) and are looked
up again after `start_cycle()` or, at the latest, `retry_failed_after` seconds. A missing role
(`FatalError`) still stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from config import ServiceNowSettings
from connectors.errors import ConnectorError, FatalError
from connectors.servicenow import query
from connectors.servicenow.client import TableClient, log
from connectors.servicenow.guard import Guard
from review import Person


@dataclass
class PeopleDirectory:
    """Finds sys_user sys_ids for people; `prepare` looks a batch up in one request."""

    client: TableClient
    guard: Guard
    settings: ServiceNowSettings
    overrides: Mapping[str, str] = field(default_factory=dict)  # email (casefold) -> sys_id
    retry_failed_after: float = 600.0  # a failed lookup is tried again at the latest then
    clock: Callable[[], float] = time.monotonic
    _by_email: dict[str, str] = field(default_factory=dict)  # "" = looked up, not found
    _failed: dict[str, float] = field(default_factory=dict)  # email -> when its lookup failed

    @property
    def lookup_failed(self) -> tuple[str, ...]:
        """Emails whose lookup failed this cycle (no sys_id, but not "no user" either)."""
        return tuple(sorted(email for email in self._failed if self._failed_recently(email)))

    def any_failed(self, people: Iterable[Person | None]) -> bool:
        """Whether a lookup of one of `people` failed this cycle: a ticket written for them
        lacks an assignee and should be written again next cycle."""
        failed = set(self.lookup_failed)
        return any(p is not None and (p.email or "").casefold() in failed for p in people)

    def start_cycle(self) -> None:
        """A new cycle: people whose lookup failed in the last one are looked up again."""
        self._failed.clear()

    def prepare(self, people: Iterable[Person]) -> None:
        """Look up, in batches, every email not known yet."""
        pending: dict[str, Person] = {}
        for person in people:
            email = (person.email or "").casefold()
            if not email or self._known(person) or email in self._by_email:
                continue
            if not _queryable(email):
                self._by_email[email] = ""
            elif not self._failed_recently(email):
                pending.setdefault(email, person)
        emails = list(pending)
        size = self.settings.lookup_batch_size
        for start in range(0, len(emails), size):
            batch = emails[start : start + size]
            try:
                self._lookup(batch)
            except FatalError:
                raise
            except ConnectorError as error:
                self._lookup_failed([pending[email] for email in batch], error)

    def sys_id(self, person: Person) -> str:
        """The person's sys_user sys_id, or "" if they have none we can find."""
        known = self._known(person)
        if known:
            return known
        email = (person.email or "").casefold()
        if email and email not in self._by_email:
            self.prepare([person])
        if email in self._failed and email not in self._by_email:
            return ""  # logged once when the lookup failed
        found = self._by_email.get(email, "")
        if not found:
            log.warning("servicenow.person_not_found", person=person.name)
        return found

    def watcher(self, person: Person) -> str:
        """A watch_list entry: the sys_id, else the email, else nothing."""
        return self.sys_id(person) or (person.email or "")

    def _known(self, person: Person) -> str:
        source = person.source
        if source is not None and source.system == "servicenow" and query.SYS_ID.match(source.id):
            return source.id
        return self.overrides.get((person.email or "").casefold(), "")

    def _failed_recently(self, email: str) -> bool:
        failed_at = self._failed.get(email)
        return failed_at is not None and self.clock() - failed_at < self.retry_failed_after

    def _lookup_failed(self, people: list[Person], error: ConnectorError) -> None:
        now = self.clock()
        for person in people:
            self._failed[(person.email or "").casefold()] = now
        log.warning(
            "servicenow.person_lookup_failed",
            people=[person.name for person in people],
            error=str(error),
            hint="their tickets use what is known (unassigned, watched by email); "
            "they are looked up again next cycle",
        )

    def _lookup(self, emails: list[str]) -> None:
        result = self.guard.call(
            lambda: self.client.list(
                self.settings.tables.people,
                query=query.conjoin([query.one_of("email", emails), "active=true"]),
                fields=("sys_id", "email", "name"),
                limit=len(emails) * 2,
            ),
            what=f"table {self.settings.tables.people}",
        )
        for email in emails:
            self._by_email.setdefault(email, "")
            self._failed.pop(email, None)
        for row in result.records:
            email = str(row.get("email", "")).casefold()
            if email in self._by_email and not self._by_email[email]:
                self._by_email[email] = str(row.get("sys_id", ""))


def _queryable(email: str) -> bool:
    return not any(char in email for char in "^,\n\r")
