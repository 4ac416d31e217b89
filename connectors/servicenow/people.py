"""People of the review model as `sys_user` records: by source ref, config override, or email.

A `Person` read from ServiceNow carries its sys_id (`source`); others (from Jira, from config)
are matched by email: `review.people` overrides first, then one `emailIN...` lookup per batch of
unknown emails, cached. An email that cannot go into a query safely (caret, comma) or that no
user has is not an error: the task stays unassigned and the person is watched by email, which
`watch_list` accepts for people without an account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from config import ServiceNowSettings
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
    _by_email: dict[str, str] = field(default_factory=dict)  # "" = looked up, not found

    def prepare(self, people: Iterable[Person]) -> None:
        """Look up, in batches, every email not known yet."""
        emails: list[str] = []
        for person in people:
            email = (person.email or "").casefold()
            if email and not self._known(person) and email not in self._by_email:
                if _queryable(email):
                    emails.append(email)
                else:
                    self._by_email[email] = ""
        emails = list(dict.fromkeys(emails))
        size = self.settings.lookup_batch_size
        for start in range(0, len(emails), size):
            self._lookup(emails[start : start + size])

    def sys_id(self, person: Person) -> str:
        """The person's sys_user sys_id, or "" if they have none we can find."""
        known = self._known(person)
        if known:
            return known
        email = (person.email or "").casefold()
        if email and email not in self._by_email:
            self.prepare([person])
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
        for row in result.records:
            email = str(row.get("email", "")).casefold()
            if email in self._by_email and not self._by_email[email]:
                self._by_email[email] = str(row.get("sys_id", ""))


def _queryable(email: str) -> bool:
    return not any(char in email for char in "^,\n\r")
