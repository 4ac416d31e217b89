"""People in Jira: email -> accountId (Cloud) or user name (Data Center), cached, with overrides.

A person Jira cannot resolve (no account, or an email Cloud hides) is remembered as unresolved
and reported, never an error: the caller assigns the fallback and lists the gap. The cache can
be exported and preloaded so the sync layer persists it between runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from config import Settings
from connectors.errors import RequestRejected
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

    def preload(self, known: Mapping[str, str | None]) -> None:
        """Take a persisted cache (email -> identity or None for 'not in Jira')."""
        self.cache.update({email.lower(): identity for email, identity in known.items()})

    def identity(self, person: Person | None) -> str | None:
        """accountId (Cloud) / name (DC) of `person`, or None if Jira does not know them."""
        if person is None or not person.email:
            return None
        return self.by_email(person.email)

    def by_email(self, email: str) -> str | None:
        wanted = email.strip().lower()
        if wanted in self.overrides:
            return self.overrides[wanted]
        if wanted not in self.cache:
            self.cache[wanted] = self._search(wanted)
            if self.cache[wanted] is None:
                log.warning("jira.person_unresolved", email=wanted)
        return self.cache[wanted]

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
