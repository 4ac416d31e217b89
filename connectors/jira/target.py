"""Jira as the target of review tickets: find by key label, create in bulk, update, comment.

Create order is parents first, then sub-tasks, each level in bulk calls of at most 50. A create
is sent once: a bulk call that fails in transit (timeout, reset, 5xx, an unreadable answer) and
an element answered with neither an issue nor an error leave their keys **in doubt** — Jira may
still finish the create after we stopped waiting, and its search index lags behind. The caller
quarantines such keys (`quarantine_seconds`: the create settle time plus `jira.index_lag_seconds`)
before a lookup may prove them absent. Only what Jira refused (field errors, 400) or never
received (429, connection refused) fails plainly. Watchers are separate steps (`add_watcher`),
so a failure there never undoes a create.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import structlog

from config import Settings
from connectors.base import (
    AttachedFile,
    CreateResult,
    KnownStates,
    LinkedTicket,
    StateRead,
    TicketComment,
    TicketRef,
    TicketState,
    create_settle_seconds,
    outcome_unknown,
)
from connectors.crashpoints import crash_point
from connectors.errors import ConnectorError, FatalError, RequestRejected, TransientError
from connectors.jira.adf import plain_text
from connectors.jira.client import (
    FIELD_CONFIG_KEYS,
    BulkOutcome,
    JiraApi,
    JiraClient,
    Permission,
)
from connectors.jira.jql import keys_in, labels_in, quote
from connectors.jira.links import browse_url, site_url
from connectors.jira.people import PeopleDirectory
from connectors.jira.search import search
from connectors.jira.tickets import SYNC_LABEL, IssueTypes, TicketFields
from review import Document, Person, TicketSpec
from review.document import paragraph

log = structlog.get_logger("slm_sync.jira.target")
BULK_LIMIT = 50
KEY_PREFIX = "slm:"  # idempotency keys: slm:<cycle>:<service>:<activity>
LOOKUP_CHUNK = 50
# Open linked issues watched per search by an incremental ticket read (`key in (...)`): a JQL
# of ~12 KB, well inside what Jira Cloud and Data Center accept in a POST body.
WATCHED_PER_SEARCH = 1000
STATE_FIELDS = ("status", "labels", "duedate", "resolutiondate", "assignee")
COMMENT_PAGE = 100  # Cloud's most per page of GET issue/{key}/comment
IDENTITY_KEYS = ("accountId", "name", "key")  # how /myself and comment authors name a user
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a comment without a readable time sorts first


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[start : start + size] for start in range(0, len(items), size))


def _either(ours: str, watched: Sequence[str], window: str) -> str:
    """Our tickets changed in the window, or (with `watched`) those linked issues changed in
    it. Parenthesised: Atlassian's spec parses "A OR B AND C" as "(A OR B) AND C"."""
    if not watched:
        return ours + window
    return f"({ours}{window}) OR ({keys_in(watched)}{window})"


class JiraTarget:
    """`TargetConnector` for Jira Cloud and Data Center."""

    system = "jira"

    def __init__(
        self,
        api: JiraApi,
        settings: Settings,
        people: PeopleDirectory | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.settings = settings.jira
        self.quarantine_seconds = create_settle_seconds(settings) + settings.jira.index_lag_seconds
        self.people = people or PeopleDirectory.from_settings(api, settings)
        self.sleep = sleep
        self.clock = clock
        self._started = clock()
        self._fields: TicketFields | None = None
        self._known: dict[str, TicketRef] = {}
        self._me: dict[str, str] | None = None  # the integration account (/myself), read once
        self._shown: dict[str, str] = {}  # ticket key -> attachment id its chart shows (Cloud)
        self._ahead: dict[str, _ReadAhead] = {}  # ticket key -> what `read_ahead` read of it
        # the sync layer's ticket book for this cycle: `state()` answers from it (see there)
        self.known_states: KnownStates | None = None
        # linked issues a search refused and a read by key found (archived): read by key no more
        self._unsearchable: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> JiraTarget:
        """Connect to the configured site (deployment detected unless configured)."""
        return cls(JiraClient.connect(settings.jira, settings.http), settings)

    @property
    def unresolved_people(self) -> tuple[str, ...]:
        """Emails of people Jira could not match (for the sync layer to list as gaps)."""
        return self.people.unresolved

    @property
    def site(self) -> str:
        """The base of links people open (`jira.public_url`, else the API's base URL)."""
        return site_url(self.settings, self.api.base_url)

    @property
    def fields(self) -> TicketFields:
        if self._fields is None:
            types = IssueTypes.discover(self.api, self.settings)
            self._fields = TicketFields(
                self.api, self.settings, self.people, types, self._shown, self.site
            )
        return self._fields

    def ref(self, key: str, issue_id: str) -> TicketRef:
        return TicketRef(key=key, id=issue_id, url=browse_url(self.site, key))

    # ---- find ------------------------------------------------------------------------------
    def find(self, keys: Sequence[str], *, recent: bool = False) -> dict[str, TicketRef]:
        found = {key: self._known[key] for key in keys if key in self._known}
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        found.update(self._lookup(missing))
        missing = [key for key in missing if key not in found]
        wait = self._index_wait(recent)
        if missing and wait > 0:
            self.sleep(wait)  # a write may not be searchable yet
            found.update(self._lookup(missing))
        self._known.update(found)
        return found

    def _index_wait(self, recent: bool) -> float:
        """How long a miss must wait for the search index before it counts.

        `recent` keys (a create with unknown outcome, maybe moments ago) wait the full lag.
        Others can only have been written before this process started (by an earlier
        incarnation whose ledger is gone): once we have run for the lag, the index has them.
        """
        lag = self.settings.index_lag_seconds
        if recent:
            return lag
        return max(0.0, lag - (self.clock() - self._started))

    def _lookup(self, keys: Sequence[str]) -> dict[str, TicketRef]:
        found: dict[str, tuple[int, TicketRef]] = {}
        reconcile = [int(ref.id) for ref in self._known.values() if ref.id.isdigit()][-50:]
        for chunk in _chunks(list(keys), LOOKUP_CHUNK):
            wanted = set(chunk)
            jql = labels_in(self.settings.project, chunk)
            for page in search(self.api, jql, ["labels"], reconcile=reconcile, what="key lookup"):
                for issue in page:
                    for label in wanted.intersection(issue["fields"].get("labels") or []):
                        self._keep_oldest(found, label, issue)
        return {key: ref for key, (_, ref) in found.items()}

    def _keep_oldest(
        self, found: dict[str, tuple[int, TicketRef]], key: str, issue: Mapping[str, Any]
    ) -> None:
        number = int(issue["id"])
        if key in found and found[key][0] != number:
            log.warning("jira.duplicate_key", key=key, issues=[found[key][1].key, issue["key"]])
        if key not in found or number < found[key][0]:
            found[key] = (number, self.ref(str(issue["key"]), str(issue["id"])))

    # ---- create ----------------------------------------------------------------------------
    def create(
        self, specs: Sequence[TicketSpec], parents: Mapping[str, TicketRef]
    ) -> list[CreateResult]:
        self.people.prepare(p for spec in specs for p in _people_of(spec))
        batch = {spec.key for spec in specs}
        top = [s for s in specs if s.parent_key is None or s.parent_key not in batch]
        results = self._create_level(top, parents)
        known = {**parents, **{r.spec_key: r.ref for r in results.values() if r.ref}}
        children = [s for s in specs if s.parent_key is not None and s.parent_key in batch]
        results.update(self._create_level(children, known))
        return [results[spec.key] for spec in specs]

    def _create_level(
        self, specs: Sequence[TicketSpec], parents: Mapping[str, TicketRef]
    ) -> dict[str, CreateResult]:
        results: dict[str, CreateResult] = {}
        ready: list[TicketSpec] = []
        for spec in specs:
            if spec.parent_key is not None and spec.parent_key not in parents:
                error = f"parent ticket {spec.parent_key} does not exist (not created)"
                results[spec.key] = CreateResult(spec.key, None, error)
            else:
                ready.append(spec)
        sent = 0
        while ready:
            chunk, ready = ready[:BULK_LIMIT], ready[BULK_LIMIT:]
            if sent:
                crash_point("mid_bulk")
            sent += 1
            done, retry = self._create_chunk(chunk, parents)
            results.update(done)
            # Elements refused only for their assignee were not created: they go again, to the
            # fallback assignee, at the head of the next call (not a call of their own).
            ready = [*retry, *ready]
        return results

    def _create_chunk(
        self, chunk: Sequence[TicketSpec], parents: Mapping[str, TicketRef]
    ) -> tuple[dict[str, CreateResult], list[TicketSpec]]:
        """One bulk call for `chunk`, never repeated here (see the module docstring); with the
        specs to send again because Jira refused only their assignee."""
        results: dict[str, CreateResult] = {}
        ready: list[TicketSpec] = []
        updates: list[dict[str, Any]] = []
        for spec in chunk:
            try:
                updates.append(self.fields.create(spec, parents.get(spec.parent_key or "")))
                ready.append(spec)
            except FatalError:
                raise
            except ConnectorError as error:  # a lookup for this ticket's fields failed
                results[spec.key] = CreateResult(spec.key, None, f"{spec.key} not sent: {error}")
        if not ready:
            return results, []
        try:
            outcomes = self.api.bulk_create(updates)
        except (RequestRejected, TransientError) as error:
            doubt = outcome_unknown(error)
            results.update({s.key: CreateResult(s.key, None, str(error), doubt) for s in ready})
            return results, []
        for spec, outcome in zip(ready, outcomes, strict=True):
            results[spec.key] = self._element(spec, outcome)
        return results, self._refused_assignees(ready, updates, outcomes)

    def _refused_assignees(
        self,
        specs: Sequence[TicketSpec],
        updates: Sequence[Mapping[str, Any]],
        outcomes: Sequence[BulkOutcome],
    ) -> list[TicketSpec]:
        """Specs refused only because Jira will not assign issues to their assignee: the
        person is remembered as not assignable, so the retry goes to the fallback assignee."""
        retry: list[TicketSpec] = []
        for spec, update, outcome in zip(specs, updates, outcomes, strict=True):
            identity = _refused_assignee(outcome.errors, update["fields"].get("assignee"))
            newly = identity is not None and identity not in self.people.refused
            if identity is not None and newly and set(outcome.errors) == {"assignee"}:
                self.people.refuse_assignee(identity)
                retry.append(spec)
        return retry

    def _element(self, spec: TicketSpec, outcome: BulkOutcome) -> CreateResult:
        if outcome.key and outcome.id:
            ref = self.ref(outcome.key, outcome.id)
            self._known[spec.key] = ref
            log.info("ticket.created", key=spec.key, issue=outcome.key)
            return CreateResult(spec.key, ref)
        if outcome.errors or outcome.messages:
            error = _element_error(spec, outcome.errors, outcome.messages)
            log.warning("jira.create_refused", key=spec.key, error=error)
            return CreateResult(spec.key, None, error)
        # Neither an issue nor an error for this element: Jira may have made it.
        return CreateResult(spec.key, None, f"jira answered nothing for {spec.key}", True)

    @property
    def watches(self) -> bool:
        """Whether consulted and informed people become watchers (`jira.add_watchers`)."""
        return self.settings.add_watchers

    def add_watcher(self, ref: TicketRef, person: Person) -> None:
        """Make `person` a watcher; adding one twice is harmless. Someone Jira does not know, or
        refuses (no such user, no permission), is logged and skipped; transient failures raise."""
        identity = self.people.identity(person)
        if identity is None:
            return
        try:
            self.api.call(
                "POST",
                f"issue/{ref.key}/watchers",
                what=f"watcher on {ref.key}",
                permission=Permission.WATCHERS,
                body=identity,
            )
        except RequestRejected as error:
            log.warning("jira.watcher_failed", issue=ref.key, error=str(error))

    def remove_watcher(self, ref: TicketRef, person: Person) -> None:
        """Stop `person` watching (they left the ticket's people list); gone already is fine."""
        identity = self.people.identity(person)
        if identity is None:
            return
        param = "accountId" if self.api.deployment.value == "cloud" else "username"
        try:
            self.api.call(
                "DELETE",
                f"issue/{ref.key}/watchers",
                what=f"watcher on {ref.key}",
                permission=Permission.WATCHERS,
                params={param: identity},
            )
        except RequestRejected as error:
            log.warning("jira.watcher_remove_failed", issue=ref.key, error=str(error))

    # ---- update, comment, attach, transition -----------------------------------------------
    def update(self, ref: TicketRef, spec: TicketSpec) -> None:
        try:
            self._update(ref, spec)
        except RequestRejected as error:
            sent = self.fields.editable(spec).get("assignee")
            identity = _refused_assignee(error.field_errors or {}, sent)
            if identity is None or identity in self.people.refused:
                raise
            self.people.refuse_assignee(identity)
            self._update(ref, spec)  # now with the fallback assignee

    def _update(self, ref: TicketRef, spec: TicketSpec) -> None:
        desired = self.fields.editable(spec)
        current = self._current(ref, [*desired, "labels"])
        changed = {
            name: value for name, value in desired.items() if not _same(current.get(name), value)
        }
        present = set(current.get("labels") or [])
        wanted = self.fields.create(spec, None)["fields"]["labels"]
        added = [{"add": label} for label in wanted if label not in present]
        if not changed and not added:
            return
        body: dict[str, Any] = {"fields": changed}
        if added:
            body["update"] = {"labels": added}
        permission = Permission.ASSIGN if set(changed) == {"assignee"} else Permission.EDIT
        self.api.call(
            "PUT", f"issue/{ref.key}", what=f"issue {ref.key}", permission=permission, body=body
        )
        self._wrote(ref.key, changed, [item["add"] for item in added])
        log.info("ticket.updated", issue=ref.key, fields=sorted(changed), labels=len(added))

    def _current(self, ref: TicketRef, names: Sequence[str], what: str = "issue") -> dict[str, Any]:
        """The ticket's `names` fields: as read ahead this cycle, else one GET."""
        ahead = self._ahead.get(ref.key)
        if ahead is not None and ahead.names.issuperset(names):
            return ahead.fields
        return dict(self._get_issue(ref.key, names, what)["fields"])

    def _get_issue(self, key: str, fields: Sequence[str], what: str = "issue") -> dict[str, Any]:
        """GET issue/{key} with `fields` (a refusal raises)."""
        return dict(
            self.api.call(
                "GET",
                f"issue/{key}",
                what=f"{what} {key}",
                permission=Permission.BROWSE,
                params={"fields": ",".join(fields)},
            )
        )

    def _wrote(self, key: str, changed: Mapping[str, Any], labels: Sequence[str]) -> None:
        """What our PUT set, in the ticket's read-ahead copy (so a second write this cycle
        compares with what the ticket holds now, not with what it held before ours)."""
        ahead = self._ahead.get(key)
        if ahead is not None:
            ahead.fields.update(changed)
            ahead.fields["labels"] = [*(ahead.fields.get("labels") or []), *labels]

    # ---- read ahead ------------------------------------------------------------------------
    def read_ahead(self, refs: Sequence[TicketRef]) -> None:
        """Read the tickets a cycle is about to write, 50 per search (Cloud): the fields an
        update compares, labels and attachments. `update` and `attachments` then use that copy
        instead of a GET each, until `forget_read_ahead` (the next cycle).

        Only Cloud reads ahead: its search reads these ids through the index lag
        (`reconcileIssues`), so the copy is as fresh as a GET. Data Center's search may show
        a ticket as it was before our last write (index lag), and an update compared with that
        could skip a field it must send: there every update keeps its own GET. A ticket the
        search misses is read by key when it is written, as before. Our own writes keep the
        copy true (`_wrote`); an upload or a removal drops its attachment list. A person's
        edit between this read and our write is never lost: an update sends only fields of
        ours whose value differs from the copy, and labels are only ever added.
        """
        if self.api.deployment.value != "cloud":
            return
        by_key = {ref.key: ref for ref in refs if ref.key not in self._ahead}
        names = [*self.fields.editable_names, "labels", "attachment"]
        for chunk in _chunks(list(by_key), LOOKUP_CHUNK):
            ids = [int(by_key[key].id) for key in chunk if by_key[key].id.isdigit()]
            try:
                pages = search(
                    self.api, keys_in(chunk), names, reconcile=ids, what="tickets to update"
                )
                issues = [issue for page in pages for issue in page]
            except RequestRejected as error:  # a deleted key fails the query: read by key
                log.warning("jira.read_ahead_failed", tickets=len(chunk), error=str(error))
                continue
            for issue in issues:
                if str(issue.get("key")) in by_key:
                    fields = dict(issue.get("fields") or {})
                    self._ahead[str(issue["key"])] = _ReadAhead(frozenset(names), fields)

    def forget_read_ahead(self) -> None:
        """A new cycle: what was read ahead for the last one is not used again."""
        self._ahead.clear()

    def comment(self, ref: TicketRef, body: Document) -> None:
        self.api.call(
            "POST",
            f"issue/{ref.key}/comment",
            what=f"comment on {ref.key}",
            permission=Permission.COMMENT,
            body={"body": self.fields.render(body)},
            idempotent=False,
        )

    def attach(self, ref: TicketRef, filename: str, content: bytes, content_type: str) -> str:
        self._attachments_changed(ref.key)
        return self.api.attach(ref.key, filename, content, content_type)

    def _attachments_changed(self, key: str) -> None:
        """The ticket's attachment list read ahead is out of date: the next listing reads it."""
        ahead = self._ahead.get(key)
        if ahead is not None:
            self._ahead[key] = _ReadAhead(ahead.names - {"attachment"}, ahead.fields)

    @property
    def shows_attachments(self) -> bool:
        """Cloud shows the chart inline by its attachment id (ADF media); Data Center's wiki
        markup shows it by file name, whatever its id."""
        return self.api.deployment.value == "cloud"

    def show_attachment(self, key: str, attachment_id: str) -> None:
        """The ticket `key` (idempotency key) shows its chart from attachment `attachment_id`
        from now on: its description renders with it."""
        self._shown[key] = attachment_id

    def attachments(self, ref: TicketRef, filename: str) -> list[AttachedFile]:
        """The ticket's attachments named `filename` (to recognise a chart already there): as
        read ahead this cycle, else one GET."""
        files = self._current(ref, ["attachment"], "attachments of").get("attachment") or []
        return [
            AttachedFile(
                name=filename,
                size=int(item.get("size") or 0),
                read=partial(self.api.download, str(item.get("content", "")), what=filename),
                id=str(item.get("id", "")),
            )
            for item in files
            if item.get("filename") == filename
        ]

    def remove_attachment(self, ref: TicketRef, attached: AttachedFile) -> None:
        """Delete an attachment slm-sync replaced (an older version of the ticket's chart)."""
        self._attachments_changed(ref.key)
        self.api.call(
            "DELETE",
            f"attachment/{attached.id}",
            what=f"attachment {attached.name} ({attached.id}) on {ref.key}",
            permission=Permission.ATTACH,
        )

    def comment_texts(self, ref: TicketRef, latest: int) -> list[str]:
        """Plain text of the ticket's latest comments, oldest first: one page, newest first
        (`orderBy=-created`), so a long discussion costs no more than a short one."""
        page = self.api.call(
            "GET",
            f"issue/{ref.key}/comment",
            what=f"comments of {ref.key}",
            permission=Permission.BROWSE,
            params={"startAt": 0, "maxResults": max(latest, 1), "orderBy": "-created"},
        )
        newest = [c for c in (page or {}).get("comments") or [] if isinstance(c, dict)][:latest]
        return [plain_text(comment.get("body")) for comment in reversed(newest)]

    def transition(self, ref: TicketRef, name: str) -> bool:
        """Move the ticket by transition (or target status) name; False if none matches."""
        listed = self.api.call(
            "GET",
            f"issue/{ref.key}/transitions",
            what=f"transitions of {ref.key}",
            permission=Permission.TRANSITION,
        )
        for transition in (listed or {}).get("transitions") or []:
            names = {
                str(transition.get("name", "")).lower(),
                str((transition.get("to") or {}).get("name", "")).lower(),
            }
            if name.lower() in names:
                self.api.call(
                    "POST",
                    f"issue/{ref.key}/transitions",
                    what=f"transition of {ref.key}",
                    permission=Permission.TRANSITION,
                    body={"transition": {"id": transition["id"]}},
                )
                return True
        return False

    def close(self, ref: TicketRef) -> bool:
        """Apply the configured done transition (`jira.done_transition`)."""
        return self.transition(ref, self.settings.done_transition)

    def unresolved(self, people: Sequence[Person]) -> tuple[Person, ...]:
        """People with an email Jira cannot match, and people Jira refused as assignees (their
        tickets went to the fallback assignee). The sync layer asks for the people of the
        reviews it builds, whose tickets it writes: they are looked up in batches first
        (`PeopleDirectory.prepare`), the rest one search each, all cached."""
        self.people.prepare(people)
        return tuple(p for p in people if p.email and self.people.assignable(p) is None)

    def linked(self, refs: Sequence[TicketRef]) -> dict[str, tuple[LinkedTicket, ...]]:
        """Issues linked to ours (any link type): from the ticket book where its read took
        them (`read_states` reads `issuelinks`), else from `issuelinks` in search results."""
        found: dict[str, tuple[LinkedTicket, ...]] = {}
        known = self.known_states
        keys = []
        for ref in refs:
            state = known.states.get(ref.key) if known is not None else None
            if state is not None and state.links is not None:
                found[ref.key] = state.links
            elif known is None or ref.key not in known.gone:
                keys.append(ref.key)
        for chunk in _chunks(keys, 100):
            for page in search(self.api, keys_in(chunk), ["issuelinks"], what="linked issues"):
                for issue in page:
                    found[str(issue["key"])] = self._links(issue["fields"])
        return found

    def _links(self, fields: Mapping[str, Any]) -> tuple[LinkedTicket, ...]:
        """The issues an issue's `issuelinks` field links it to."""
        return tuple(self._linked(link) for link in fields.get("issuelinks") or [])

    def _linked(self, link: Mapping[str, Any]) -> LinkedTicket:
        other = link.get("outwardIssue") or link.get("inwardIssue") or {}
        fields = other.get("fields") or {}
        category = ((fields.get("status") or {}).get("statusCategory") or {}).get("key", "")
        key = str(other.get("key", ""))
        return LinkedTicket(
            key=key,
            title=str(fields.get("summary", key)),
            done=category == "done",
            url=browse_url(self.site, key),
            id=str(other.get("id") or ""),
        )

    # ---- duplicate audit -------------------------------------------------------------------
    def ours_created_since(self, since: datetime | None) -> list[tuple[str, TicketRef, bool]]:
        """(key, ticket, done) of every ticket of ours created since `since` (all if None),
        oldest first: one search, for the duplicate audit. The window is relative (`-Nm`), so
        the integration user's time zone cannot shift it."""
        jql = f"project = {quote(self.settings.project)} AND labels = {quote(SYNC_LABEL)}"
        if since is not None:
            minutes = math.ceil((datetime.now(UTC) - since).total_seconds() / 60) + 1
            jql += f" AND created >= -{minutes}m"
        found: list[tuple[str, TicketRef, bool]] = []
        for page in search(self.api, jql + " ORDER BY created ASC", ["labels", "status"],
                           what="duplicate audit"):  # fmt: skip
            for issue in page:
                ref = self.ref(str(issue["key"]), str(issue["id"]))
                done = _state(ref, issue["fields"]).done
                for key in issue["fields"].get("labels") or []:
                    if key.startswith(KEY_PREFIX):
                        found.append((key, ref, done))
        return found

    def retire_duplicate(self, duplicate: TicketRef, survivor: TicketRef) -> None:
        """Link `duplicate` to `survivor` as a Duplicate, say so in a comment, and close it.
        Nothing is deleted; the idempotency label stays (lookups keep the oldest ticket)."""
        self.api.call(
            "POST",
            "issueLink",
            what=f"duplicate link {duplicate.key} -> {survivor.key}",
            permission=Permission.EDIT,
            body={
                "type": {"name": "Duplicate"},
                "inwardIssue": {"key": survivor.key},
                "outwardIssue": {"key": duplicate.key},
            },
            idempotent=False,
        )
        note = f"Closed by slm-sync: a duplicate of {survivor.key}, which carries the review."
        self.comment(duplicate, Document(blocks=(paragraph(note),)))
        self.close(duplicate)

    # ---- state -----------------------------------------------------------------------------
    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        """Status, labels, due date, resolution date and assignee of our tickets (one search
        per 50), and with `comments` what people wrote in them.

        With `known_states` (the sync layer's ticket book, kept current by `read_states`),
        tickets it holds are answered from it, its gone tickets are absent, and only the rest
        (created since the book's read) are read.

        The search index lags behind new issues and every change: Cloud reads these ids
        through it (`reconcileIssues`, 50 at most), and a ticket the search still misses is
        read by key. Search embeds only a page of an issue's comments (`comment.total` says how
        many there are); the rest are read from GET issue/{key}/comment, page by page.
        """
        known = self.known_states
        states: dict[str, TicketState] = {}
        if known is not None:
            states = {ref.key: known.states[ref.key] for ref in refs if ref.key in known.states}
            refs = [r for r in refs if r.key not in known.states and r.key not in known.gone]
        fields = [*STATE_FIELDS, "comment", "issuelinks"] if comments else list(STATE_FIELDS)
        by_key = {ref.key: ref for ref in refs}
        for chunk in _chunks(list(by_key), LOOKUP_CHUNK):
            for issue in self._state_issues(chunk, by_key, fields):
                ref = by_key.get(str(issue["key"]))
                if ref is not None:
                    states[ref.key] = self._issue_state(ref, issue["fields"], comments=comments)
        return states

    def read_states(self, mark: str | None, margin_seconds: float) -> StateRead:
        """Every ticket of ours (project and sync label) updated since `mark` (an ISO time this
        method returned) less the margin, with comments and issue links; all of them when
        `mark` is None.

        The window is relative (`updated >= -Nm`, whole minutes rounded up), so the searching
        user's time zone cannot shift it, and the elapsed time is measured on our clock, so a
        skew between the clocks cannot either. The margin is at least `jira.index_lag_seconds`:
        a change the index had not taken at the last read is inside the next window.

        A link's status is the other issue's: an improvement action moving to done does not
        touch our ticket. An incremental read therefore also asks, in the same search, for the
        issues linked to ours that may still change what a pack shows (`_watched`) and were
        updated in the window, up to `WATCHED_PER_SEARCH` keys (more take further searches).
        Jira refuses a whole query naming an issue that no longer exists (`_watch`)."""
        started = datetime.now(UTC)
        ours = f"project = {quote(self.settings.project)} AND labels = {quote(SYNC_LABEL)}"
        window = ""
        if mark is not None:
            since = datetime.fromisoformat(mark)
            margin = max(margin_seconds, self.settings.index_lag_seconds)
            minutes = max(1, math.ceil(((started - since).total_seconds() + margin) / 60))
            window = f" AND updated >= -{minutes}m"
        watched = list(_chunks(self._watched() if mark is not None else [], WATCHED_PER_SEARCH))
        first = watched[0] if watched else []
        states: dict[str, TicketState] = {}
        linked: dict[str, LinkedTicket] = {}
        unlinked: set[str] = set()
        try:
            self._read_changed(_either(ours, first, window), states, linked, asked=first)
        except RequestRejected as refused:
            if not first:
                raise
            self._read_changed(ours + window, states, linked)
            unlinked |= self._watch(first, window, linked, refused)
        for chunk in watched[1:]:
            unlinked |= self._watch(chunk, window, linked)
        log.info("jira.tickets_read", changed=len(states), linked=len(linked),
                 full=mark is None)  # fmt: skip
        return StateRead(states, started.isoformat(), linked, frozenset(unlinked))

    def _read_changed(
        self,
        jql: str,
        states: dict[str, TicketState],
        linked: dict[str, LinkedTicket],
        asked: Sequence[str] = (),
    ) -> None:
        """Our tickets the search returns into `states` (with comments and links), and every
        returned issue as a link's other end into `linked`. `asked`: the linked issues the query
        names by key (one carrying a sync label of its own is not ours for that)."""
        # A stable order: Data Center pages by startAt, and in the default order a ticket
        # updated between two pages moves ahead of them and would be missed (gone for an hour).
        fields = [*STATE_FIELDS, "comment", "created", "issuelinks", "summary"]
        named = set(asked)
        for page in search(self.api, jql + " ORDER BY created ASC", fields,
                           what="changed tickets"):  # fmt: skip
            for issue in page:
                key, issue_fields = str(issue["key"]), issue["fields"]
                linked[key] = self._linked({"outwardIssue": issue})
                if key not in named and SYNC_LABEL in (issue_fields.get("labels") or ()):
                    ref = self.ref(key, str(issue["id"]))
                    states[key] = self._issue_state(ref, issue_fields, comments=True)

    def _watched(self) -> list[str]:
        """Issues linked to our tickets in the book whose change the packs would show: every
        open one, and done ones linked to a ticket of ours still open (an improvement reopened
        during the review). Not those a search refused but a read by key found (archived)."""
        known = self.known_states
        if known is None:
            return []
        return sorted({
            link.key
            for state in known.states.values()
            for link in state.links or ()
            if (not link.done or not state.done)
            and link.key not in known.states
            and link.key not in self._unsearchable
        })  # fmt: skip

    def _watch(
        self,
        keys: Sequence[str],
        window: str,
        linked: dict[str, LinkedTicket],
        refused: RequestRejected | None = None,
    ) -> set[str]:
        """The watched issues changed in the window into `linked`; the keys that are gone
        (deleted, or no longer visible to us) are returned.

        Jira refuses a whole query naming an issue that does not exist ("An issue with key
        'X-1' does not exist for field 'key'"): the keys the refusal names are read by key
        and the rest searched again; a refusal naming none halves the list. So one deleted
        issue among a thousand costs one more search and one read, or about twenty searches
        at worst. A key that a search refuses and a read by key finds (an archived issue) is
        not searched again by this process."""
        gone: set[str] = set()
        pending = [list(keys)]
        while pending:
            part = pending.pop()
            if refused is None:
                try:
                    self._read_changed(keys_in(part) + window, {}, linked, asked=part)
                    continue
                except RequestRejected as error:
                    refused = error
            named = {k for k in part if f"'{k.lower()}'" in str(refused).lower()}
            refused = None
            alone = named or (set(part) if len(part) == 1 else set())
            for key in sorted(alone):
                if not self._read_linked(key, linked):
                    gone.add(key)
            rest = [k for k in part if k not in alone]
            if rest and alone:
                pending.append(rest)
            elif rest:
                pending += [rest[: len(rest) // 2], rest[len(rest) // 2 :]]
        return gone

    def _read_linked(self, key: str, linked: dict[str, LinkedTicket]) -> bool:
        """One linked issue read by key into `linked` (under the key Jira answers with: a
        moved issue has a new one); False if Jira has no such issue for us."""
        try:
            issue = self._get_issue(key, [*STATE_FIELDS, "summary"], what="linked issue")
        except RequestRejected:
            log.info("jira.linked_issue_gone", issue=key)
            return False
        self._unsearchable.add(key)
        log.info("jira.linked_issue_unsearchable", issue=key)
        linked[str(issue.get("key") or key)] = self._linked({"outwardIssue": issue})
        return True

    def _issue_state(
        self, ref: TicketRef, fields: Mapping[str, Any], *, comments: bool
    ) -> TicketState:
        found = replace(_state(ref, fields), assignee=self._name(fields.get("assignee")))
        if comments:
            found = replace(found, comments=self._comments(ref, fields))
        if "issuelinks" in fields:  # asked for with comments: the full read of a ticket
            found = replace(found, links=self._links(fields))
        return found

    def _state_issues(
        self, chunk: Sequence[str], by_key: Mapping[str, TicketRef], fields: list[str]
    ) -> list[dict[str, Any]]:
        ids = [int(by_key[key].id) for key in chunk if by_key[key].id.isdigit()]
        try:
            pages = search(self.api, keys_in(chunk), fields, reconcile=ids, what="ticket states")
            issues = [issue for page in pages for issue in page]
        except RequestRejected:  # a deleted key fails the whole query: read one by one
            issues = []
        seen = {str(issue["key"]) for issue in issues}
        return issues + [i for i in (self._issue(k, fields) for k in chunk if k not in seen) if i]

    def _issue(self, key: str, fields: Sequence[str] = STATE_FIELDS) -> dict[str, Any] | None:
        try:
            return self._get_issue(key, fields)
        except RequestRejected:
            return None

    # ---- comments people wrote -------------------------------------------------------------
    def _comments(self, ref: TicketRef, fields: Mapping[str, Any]) -> tuple[TicketComment, ...]:
        """Every comment of the ticket, oldest first: the page search embedded, and the rest
        read by key when `total` says there are more."""
        embedded = fields.get("comment") or {}
        raw = list(embedded.get("comments") or [])
        total = embedded.get("total")
        if isinstance(total, int) and total > len(raw):
            raw = _merged(raw, self._comment_pages(ref.key, _rest_from(embedded, len(raw))))
        comments = [self._comment(item) for item in raw if isinstance(item, dict)]
        return tuple(sorted(comments, key=lambda c: c.created))

    def _comment_pages(self, key: str, start: int = 0) -> Iterator[list[dict[str, Any]]]:
        """Pages of GET issue/{key}/comment from `start`, oldest first, until `total`."""
        while True:
            page = self.api.call(
                "GET",
                f"issue/{key}/comment",
                what=f"comments of {key}",
                permission=Permission.BROWSE,
                params={"startAt": start, "maxResults": COMMENT_PAGE, "orderBy": "created"},
            )
            items = [c for c in (page or {}).get("comments") or [] if isinstance(c, dict)]
            if not items:
                return
            yield items
            start += len(items)
            total = (page or {}).get("total")
            if isinstance(total, int) and start >= total:
                return

    def _comment(self, item: Mapping[str, Any]) -> TicketComment:
        author = item.get("author") or {}
        return TicketComment(
            author=self._name(author),
            created=_moment(item.get("created")) or EPOCH,
            text=plain_text(item.get("body")),
            ours=self._is_me(author),
        )

    def _name(self, user: Any) -> str:
        """A user as the sync names people: their e-mail where Jira shows it, or where the
        people directory knows their accountId / user name (Cloud often hides e-mails), else
        display name, else id; "" for nobody."""
        if isinstance(user, dict) and not user.get("emailAddress"):
            identity = str(user.get("accountId") or user.get("name") or "")
            known = [
                email
                for email, found in {**self.people.cache, **self.people.overrides}.items()
                if found and found == identity
            ]
            if len(known) == 1:
                return known[0]
        return _person(user)

    def _is_me(self, user: Mapping[str, Any]) -> bool:
        """Whether `user` is the integration account (Cloud: accountId; DC: name or key)."""
        if self._me is None:
            me = self.api.call("GET", "myself", what="own profile", permission=Permission.BROWSE)
            self._me = {k: str(v) for k, v in dict(me or {}).items() if k in IDENTITY_KEYS}
        keys = ("accountId",) if self.api.deployment.value == "cloud" else ("name", "key")
        return any(self._me.get(k) and str(user.get(k, "")) == self._me[k] for k in keys)


@dataclass(frozen=True)
class _ReadAhead:
    """A ticket's fields as `read_ahead` read them (`names`: which of them the copy holds)."""

    names: frozenset[str]
    fields: dict[str, Any]


def _rest_from(embedded: Mapping[str, Any], count: int) -> int:
    """Where the comments search left out begin: after the embedded page if it is the first,
    else from the start (a page from elsewhere is read again; duplicates are dropped)."""
    return count if embedded.get("startAt", 0) == 0 else 0


def _merged(
    known: list[dict[str, Any]], pages: Iterable[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """`known` comments and those of `pages`, each comment once (by id)."""
    seen = {str(c.get("id")) for c in known if isinstance(c, dict)}
    merged = list(known)
    for page in pages:
        fresh = [c for c in page if str(c.get("id")) not in seen]
        seen.update(str(c.get("id")) for c in fresh)
        merged += fresh
    return merged


def _state(ref: TicketRef, fields: Mapping[str, Any]) -> TicketState:
    status = fields.get("status") or {}
    category = (status.get("statusCategory") or {}).get("key", "")
    return TicketState(
        ref=ref,
        status=str(status.get("name", "")),
        done=category == "done",
        labels=tuple(fields.get("labels") or ()),
        fields={"status_category": category, "created": str(fields.get("created") or "")},
        due=_day(fields.get("duedate")),
        resolved=_moment(fields.get("resolutiondate")),
        assignee=_person(fields.get("assignee")),
    )


def _people_of(spec: TicketSpec) -> list[Person | None]:
    """Everyone a ticket names: its assignee, accountable, consulted and informed people."""
    return [spec.assignee, spec.accountable, *spec.consulted, *spec.informed]


def _person(user: Any) -> str:
    """A user as the sync names people: e-mail where Jira shows it (Cloud often hides it),
    else display name, else accountId / name; "" for nobody."""
    if not isinstance(user, dict):
        return ""
    for key in ("emailAddress", "displayName", "accountId", "name"):
        if user.get(key):
            return str(user[key])
    return ""


def _day(value: Any) -> date | None:
    """A Jira date field ("2026-03-01"), or None if empty or unreadable."""
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    """A Jira timestamp ("2026-03-01T10:00:00.000+0000", any offset) as an aware datetime."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        log.warning("jira.unreadable_time", value=str(value)[:40])
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _same(current: Any, desired: Any) -> bool:
    """Whether a field already holds the desired value (users compared by identity)."""
    if isinstance(desired, dict) and set(desired) <= {"accountId", "name"}:
        return isinstance(current, dict) and all(current.get(k) == v for k, v in desired.items())
    return bool(current == desired) or (current in (None, "", []) and desired in (None, "", []))


def _element_error(
    spec: TicketSpec, errors: Mapping[str, str], messages: Sequence[str] = ()
) -> str:
    """Why Jira refused one element: each field error (with the config key that set it) and
    each message not tied to a field."""
    parts = [
        f"{name}: {text} (set by {FIELD_CONFIG_KEYS.get(name, 'the review plan')})"
        for name, text in errors.items()
    ]
    parts += [str(message) for message in messages]
    if not parts:
        return f"jira refused to create {spec.key}"
    return f"jira refused to create {spec.key}: " + "; ".join(parts)


def _refused_assignee(errors: Mapping[str, str], sent: Any) -> str | None:
    """The identity Jira refused as assignee ("User 'x' cannot be assigned issues."), if so."""
    if "cannot be assigned" not in str(errors.get("assignee", "")) or not isinstance(sent, dict):
        return None
    identity = sent.get("accountId") or sent.get("name")
    return str(identity) if identity else None
