"""People in Jira: email -> accountId (Cloud) or user name (Data Center), cached, with overrides.

A person Jira cannot resolve (no account, or an email Cloud hides) is remembered as unresolved
and reported, never an error: the caller assigns the fallback and lists the gap. The cache can
be exported and preloaded so the sync layer persists it between runs.

A lookup that fails (a body cut short, 5xx or 429 after the retry policy gave up) fails only that
person, and only for this cycle: they have no identity until `start_cycle()` (which `preload`
calls), are not cached as unresolved, and are logged once (`jira.person_lookup_failed`). A
missing permission (`FatalError`) still stops the run: no one could be looked up.

Lookups happen only for people of tickets being written: `prepare` is called with the people of
the reviews being built (the packs' gap lists, `JiraTarget.unresolved`) and of a bulk create;
`identity` looks up whoever is still unknown as a ticket's fields are built.

When more than a few people are unknown (a cold start), `prepare` lists the directory
(`users/search`, 1,000 a page, stopping once all are found, Cloud) instead of one search per
person; whoever the listing does not show (an e-mail hidden by privacy settings, no account) is
searched for alone, once.

An identity (or its absence) is trusted for `jira.people_cache_seconds` (default a day). After
that, Cloud accounts are checked in `user/bulk` batches of 100 account ids (an inactive or deleted
account is forgotten and looked up again by e-mail); misses, and Data Center accounts (no batch
resource there), are searched for again. Preloaded accounts (a restarted process) count as
unchecked on Cloud; preloaded misses and Data Center accounts are trusted (the store retries
misses daily).

A person Jira refuses as an assignee ("User 'x' cannot be assigned issues": no *Assignable user*
permission) is remembered by identity (`refuse_assignee`) for the life of the directory: their
tickets go to the fallback assignee, and they are reported like unresolved people.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from config import Settings
from connectors.errors import ConnectorError, FatalError, RequestRejected
from connectors.jira.client import JiraApi, Permission
from review import Person

log = structlog.get_logger("slm_sync.jira.people")
BULK_IDS = 100  # account ids per user/bulk request (URL length; Cloud's page size)
LIST_PAGE = 1000  # users/search page size ("limited to 1000")
LIST_ABOVE = 10  # list the directory rather than search when more people than this are unknown


@dataclass
class PeopleDirectory:
    """Looks people up once per email; `unresolved` lists the emails Jira could not match."""

    api: JiraApi
    overrides: Mapping[str, str] = field(default_factory=dict)
    cache: dict[str, str | None] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # lookups that failed this cycle: not cached
    refused: set[str] = field(default_factory=set)  # identities Jira will not assign issues to
    expiry_seconds: float = 86400.0
    clock: Callable[[], float] = time.monotonic
    checked: dict[str, float] = field(default_factory=dict)  # email -> when its entry was checked
    listing: bool = True  # users/search usable (False after a 403/404)

    @classmethod
    def from_settings(cls, api: JiraApi, settings: Settings) -> PeopleDirectory:
        cloud = api.deployment.value == "cloud"
        overrides: dict[str, str] = {}
        for email, override in settings.review.people.items():
            identity = override.jira_account_id if cloud else override.jira_name
            if identity:
                overrides[email.lower()] = identity
        return cls(api, overrides, expiry_seconds=settings.jira.people_cache_seconds)

    @property
    def cloud(self) -> bool:
        return self.api.deployment.value == "cloud"

    def known(self, person: Person | None) -> str | None:
        """The identity of `person` from what is known, without asking Jira."""
        if person is None or not person.email:
            return None
        wanted = person.email.strip().lower()
        return self.overrides.get(wanted) or self.cache.get(wanted)

    def looked_up(self, person: Person) -> bool:
        """Whether Jira was asked about `person` (or an override names them)."""
        wanted = (person.email or "").strip().lower()
        return wanted in self.overrides or wanted in self.cache

    def prepare(self, people: Iterable[Person | None]) -> None:
        """Before tickets for `people` are written: check their stale known accounts in
        `user/bulk` batches and, when many are unknown, find them in one directory listing."""
        emails = {
            (p.email or "").strip().lower()
            for p in people
            if p is not None and p.email and p.email.strip().lower() not in self.overrides
        }
        emails -= self.failed
        now = self.clock()
        stale = [e for e in emails if e in self.cache and not self._fresh(e, now)]
        try:
            if self.cloud:
                self._check_accounts([e for e in stale if self.cache[e] is not None], now)
            for email in stale:  # misses, and Data Center's accounts, that expired here
                if email not in self.cache:
                    continue
                if self.cache[email] is not None and self.cloud:
                    continue  # checked above
                if email in self.checked:
                    del self.cache[email]  # searched for again
                else:  # preloaded (the store retries misses after a day): trusted from now
                    self.checked[email] = now
            unknown = sorted(e for e in emails if e not in self.cache)
            if self.cloud and self.listing and len(unknown) > LIST_ABOVE:
                self._list_directory(unknown, now)
        except FatalError:
            raise
        except ConnectorError as error:  # the lazy searches still find them one by one
            log.warning("jira.people_batch_failed", error=str(error))

    def _fresh(self, email: str, now: float) -> bool:
        checked = self.checked.get(email)
        return checked is not None and now - checked < self.expiry_seconds

    def _check_accounts(self, emails: Sequence[str], now: float) -> None:
        """user/bulk for the accounts of `emails`: active ones are fresh again, others are
        forgotten (looked up again by email)."""
        by_account: dict[str, list[str]] = {}
        for email in emails:
            by_account.setdefault(str(self.cache[email]), []).append(email)
        accounts = list(by_account)
        active: set[str] = set()
        for start in range(0, len(accounts), BULK_IDS):
            batch = accounts[start : start + BULK_IDS]
            active.update(self._bulk(batch))
        for account, owners in by_account.items():
            for email in owners:
                if account in active:
                    self.checked[email] = now
                else:
                    del self.cache[email]
                    self.checked.pop(email, None)

    def _bulk(self, accounts: list[str]) -> set[str]:
        """The active accounts among `accounts`, every page of one user/bulk request."""
        active: set[str] = set()
        start = 0
        while True:
            page = self.api.call(
                "GET",
                "user/bulk",
                what=f"user/bulk for {len(accounts)} accounts",
                permission=Permission.USERS,
                params={"accountId": accounts, "startAt": start, "maxResults": BULK_IDS},
            )
            values = page.get("values", []) if isinstance(page, dict) else []
            active.update(str(u["accountId"]) for u in values if u.get("active", True))
            if not values or page.get("isLast", True):
                return active
            start += len(values)

    def _list_directory(self, unknown: list[str], now: float) -> None:
        """Match `unknown` emails against the directory's visible e-mails, page by page,
        stopping once all are found; people not found stay unknown (searched lazily)."""
        wanted = set(unknown)
        start = 0
        while wanted:
            try:
                users = self.api.call(
                    "GET",
                    "users/search",
                    what="users/search",
                    permission=Permission.USERS,
                    params={"startAt": start, "maxResults": LIST_PAGE},
                )
            except RequestRejected:
                self.listing = False  # not offered (or not allowed): search one by one
                return
            if not isinstance(users, list) or not users:
                return
            for user in users:
                email = str(user.get("emailAddress", "")).lower()
                if email in wanted and user.get("accountId"):
                    # an inactive account is no one to assign (a search skips it too)
                    active = user.get("active", True)
                    self.cache[email] = str(user["accountId"]) if active else None
                    self.checked[email] = now
                    wanted.discard(email)
            start += len(users)

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
        if wanted in self.cache and not self._fresh(wanted, self.clock()):
            self.prepare([Person(name=wanted, email=wanted)])  # expired: check it again
        if wanted in self.cache:
            return self.cache[wanted]
        if wanted in self.failed:
            return None
        self.checked[wanted] = self.clock()
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
