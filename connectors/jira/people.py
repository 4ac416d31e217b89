"""People in Jira: email -> accountId (Cloud) or user name (Data Center), cached, with overrides.

A person Jira cannot resolve (no account, or an email Cloud hides) is remembered as unresolved
and reported, never an error: the caller assigns the fallback and lists the gap. The cache can
be exported and preloaded so the sync layer persists it between runs.

A lookup that fails (a body cut short, 5xx or 429 after the retry policy gave up) fails only that
person, and only for this cycle: they have no identity until `start_cycle()` (which `preload`
calls), are not cached as unresolved, and are logged once (`jira.person_lookup_failed`). A
missing permission (`FatalError`) still stops the run: no one could be looked up.

A person Jira refuses as an assignee ("User 'x' cannot be assigned issues": no *Assignable user*
permission) is remembered by identity (`refuse_assignee`) for the life of the directory: their
tickets go to the fallback assignee, and they are reported like unresolved people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from config import Settings
from connectors.errors import ConnectorError, FatalError, RequestRejected
from connectors.jira.client import JiraApi, Permission
from review import Person

log = structlog.get_logger("slm_sync.jira.people")


@dataclass
class PeopleDirectory:
    """Looks people up once per email; `unresolved` lists the emails Jira could not match."""

    api: JiraApi
    overrides: Mapping[str, str] = field(default_factory=dict)
    cache: dict[str, str | None] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # lookups that failed this cycle: not cached
    refused: set[str] = field(default_factory=set)  # identities Jira will not assign issues to

    @classmethod
    def from_settings(cls, api: JiraApi, settings: Settings) -> PeopleDirectory:
        cloud = api.deployment.value == "cloud"
        overrides: dict[str, str] = {}
        for email, override in settings.review.people.items():
            identity = override.jira_account_id if cloud else override.jira_name
            if identity:
                overrides[email.lower()] = identity
        return cls(api, overrides)

    @property
    def unresolved(self) -> tuple[str, ...]:
        """Emails looked up without a match in Jira (to report as gaps)."""
        return tuple(sorted(email for email, found in self.cache.items() if found is None))

    @property
    def lookup_failed(self) -> tuple[str, ...]:
        """Emails whose lookup failed this cycle (not known, not unresolved either)."""
        return tuple(sorted(self.failed))

    def any_failed(self, people: Iterable[Person | None]) -> bool:
        """Whether a lookup of one of `people` failed this cycle: a ticket written for them
        used a fallback and should be written again next cycle."""
        return any(p is not None and (p.email or "").strip().lower() in self.failed for p in people)

    def start_cycle(self) -> None:
        """A new cycle: people whose lookup failed in the last one are looked up again."""
        self.failed.clear()

    def preload(self, known: Mapping[str, str | None]) -> None:
        """Take a persisted cache (email -> identity or None for 'not in Jira') at the start of
        a cycle; failed lookups of the previous cycle are forgotten (`start_cycle`)."""
        self.start_cycle()
        self.cache.update({email.lower(): identity for email, identity in known.items()})

    def refuse_assignee(self, identity: str) -> None:
        """Jira refused `identity` as an assignee: use the fallback for them from now on."""
        if identity not in self.refused:
            self.refused.add(identity)
            log.warning(
                "jira.person_not_assignable",
                identity=identity,
                hint="grant them the Assignable user permission in the project; "
                "their tickets go to jira.fallback_assignee meanwhile",
            )

    def assignable(self, person: Person | None) -> str | None:
        """The identity of `person` if Jira knows them and has not refused them as assignee."""
        found = self.identity(person)
        return None if found in self.refused else found

    def identity(self, person: Person | None) -> str | None:
        """accountId (Cloud) / name (DC) of `person`, or None if Jira does not know them."""
        if person is None or not person.email:
            return None
        return self.by_email(person.email)

    def by_email(self, email: str) -> str | None:
        """The identity for `email`: override, cache, or one user search (None if none)."""
        wanted = email.strip().lower()
        if wanted in self.overrides:
            return self.overrides[wanted]
        if wanted in self.cache:
            return self.cache[wanted]
        if wanted in self.failed:
            return None
        try:
            found = self._search(wanted)
        except FatalError:
            raise
        except ConnectorError as error:
            self._failed(wanted, error)
            return None
        self.cache[wanted] = found
        if found is None:
            log.warning("jira.person_unresolved", email=wanted)
        return found

    def _failed(self, email: str, error: ConnectorError) -> None:
        self.failed.add(email)
        log.warning(
            "jira.person_lookup_failed",
            email=email,
            error=str(error),
            hint="tickets of this person use what is known (fallback assignee); "
            "they are looked up again next cycle",
        )

    def user_ref(self, identity: str) -> dict[str, str]:
        """The user object Jira expects in fields: accountId on Cloud, name on Data Center."""
        key = "accountId" if self.api.deployment.value == "cloud" else "name"
        return {key: identity}

    def _search(self, email: str) -> str | None:
        cloud = self.api.deployment.value == "cloud"
        params = {"query": email} if cloud else {"username": email}
        try:
            users = self.api.call(
                "GET",
                "user/search",
                what=f"user search for {email}",
                permission=Permission.USERS,
                params={**params, "maxResults": 10},
            )
        except RequestRejected:
            return None
        return _pick(users or [], email, cloud)


def _pick(users: list[dict[str, Any]], email: str, cloud: bool) -> str | None:
    """The one user whose email matches; on Cloud a single hit without a visible email counts."""
    identity_key = "accountId" if cloud else "name"
    exact = [u for u in users if str(u.get("emailAddress", "")).lower() == email]
    if len(exact) == 1:
        return str(exact[0][identity_key])
    hidden = [u for u in users if "emailAddress" not in u]
    if cloud and not exact and len(users) == 1 and hidden:
        return str(hidden[0][identity_key])
    return None
