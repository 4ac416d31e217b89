"""ServiceNow as the target: review tasks and their child tasks in one task table.

Default table `vtb_task` (settings `servicenow.tables.review_tasks`): a stock table extending
`task`, present on every instance without a plugin, that accepts plain Table API inserts by
users with the itil role. As a `task` it has every field we need (`correlation_id`,
`correlation_display`, `parent`, `assigned_to`, `watch_list`, `due_date`, `work_notes`,
`description`) and, unlike incident / problem / change / sc_task, no workflow, SLA timers,
assignment rules or mandatory fields that would reject or reshape an insert. Writing to
`task` itself is possible but creates records of the base class that most lists do not show.

Every ticket carries its idempotency key in `correlation_id` (max 100 characters; keys fit)
and `correlation_display = "slm-sync"`; one POST creates a ticket with everything in it. An
insert is sent once: if it fails after leaving (timeout, reset, 5xx) its key is in doubt and is
quarantined for `quarantine_seconds` (the create settle time; the Table API reads committed rows
at once, so no index lag is added) before a lookup may prove it absent.

Reading back (`state`): state / active, `due_date`, `closed_at` and the assignee (dot-walked
`assigned_to.email`), and with `comments=True` the tasks' work notes and additional comments
from `sys_journal_field` (see `connectors.servicenow.journal`), one query per 50 tasks. Times
are read as stored (`sysparm_display_value=false`): UTC; `due` is the UTC date of `due_date`.
An entry is ours when its `sys_created_by` is the integration user (`servicenow.username`, or
with an OAuth token the user `javascript:gs.getUserID()` names, looked up once).

Improvement actions are the child tasks people add under ours (`parent`, any table extending
`task`, no marker). The ticket book's read (`read_states`) takes them along in its one Table
API read over `task` (an `^NQ` group with a dot-walk through `parent`), so `linked` answers
from the book; a deleted child is dropped at the book's next full read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from config import ServiceNowSettings, Settings
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
from connectors.errors import ConnectorError, FatalError
from connectors.servicenow import query
from connectors.servicenow.client import SYSTEM, Record, TableClient, TableResult, log
from connectors.servicenow.guard import Guard
from connectors.servicenow.journal import JournalReader
from connectors.servicenow.links import record_url
from connectors.servicenow.lookup import read_by_id
from connectors.servicenow.paging import KeysetPager
from connectors.servicenow.people import PeopleDirectory
from connectors.servicenow.render import render_text
from connectors.servicenow.streams import StreamSpec
from connectors.servicenow.wiring import build_client, build_guard
from review import Document, Person, TicketSpec

TICKET_FIELDS = ("sys_id", "number", "correlation_id", "sys_updated_on")
MANAGED_FIELDS = (
    "short_description", "description", "assigned_to", "watch_list", "due_date", "parent",
    "correlation_id", "correlation_display",
)  # fmt: skip
STATE_FIELDS = (
    "sys_id", "number", "state", "active", "correlation_id", "correlation_display", "due_date",
    "closed_at", "assigned_to", "assigned_to.email", "assigned_to.user_name",
)  # fmt: skip
LINK_FIELDS = (
    "sys_id", "number", "short_description", "state", "active", "parent", "sys_class_name",
    "sys_updated_on",
)  # fmt: skip
CLOSED_STATES = frozenset({"3", "4", "7"})  # task: Closed Complete / Incomplete / Skipped
SKIPPED = "7"
CLOSED_COMPLETE = "3"
MARKER = "slm-sync"
# Not ours: `!=` may leave out rows whose field is empty, so those are named explicitly (^OR
# binds tighter than ^: `a^b^ORc` reads a AND (b OR c)).
NOT_OURS = f"correlation_display!={MARKER}^ORcorrelation_displayISEMPTY"
# A task of any class whose parent is one of ours (dot-walked) and that slm-sync did not make.
CHILDREN_QUERY = f"parent.correlation_display={MARKER}^{NOT_OURS}"
STAMP = "%Y-%m-%d %H:%M:%S"
KEYS_PER_LOOKUP = 50


class ServiceNowTarget:
    """`connectors.TargetConnector` writing review tasks to a ServiceNow task table."""

    system = "servicenow"

    def __init__(
        self,
        client: TableClient,
        settings: ServiceNowSettings,
        guard: Guard,
        people: PeopleDirectory,
        base_url: str = "",
        quarantine_seconds: float = 60.0,
    ) -> None:
        self.client = client
        self.quarantine_seconds = quarantine_seconds
        self.settings = settings
        self.guard = guard
        self.people = people
        self.table = settings.tables.review_tasks
        self.base_url = base_url.rstrip("/")
        self.journal = JournalReader(client, guard, settings.page_size, settings.tables.people)
        self._shown: dict[str, str] = {}  # ticket key -> sys_id of the attachment it links
        self._me: str | None = None  # the integration user's user_name, once known
        self._ahead: dict[str, Record] = {}  # sys_id -> managed fields read ahead this cycle
        # the sync layer's ticket book for this cycle: `state()` answers from it (see there)
        self.known_states: KnownStates | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceNowTarget:
        """A target for `settings.servicenow`; people overrides from `review.people`."""
        client, guard = build_client(settings), build_guard(settings)
        overrides = {
            email.casefold(): o.servicenow_sys_id
            for email, o in settings.review.people.items()
            if o.servicenow_sys_id
        }
        people = PeopleDirectory(client, guard, settings.servicenow, overrides)
        return cls(
            client,
            settings.servicenow,
            guard,
            people,
            settings.servicenow.record_base_url() or "",
            quarantine_seconds=create_settle_seconds(settings),
        )

    # --- lookups ------------------------------------------------------------------------------

    def find(self, keys: Sequence[str], *, recent: bool = False) -> dict[str, TicketRef]:
        """Tickets whose correlation_id is one of `keys` (oldest first wins on duplicates).

        The Table API reads committed rows at once, so `recent` needs no waiting here.
        """
        found: dict[str, TicketRef] = {}
        unique = list(dict.fromkeys(query.ticket_key(k) for k in keys))
        spec = StreamSpec(self.table, TICKET_FIELDS)
        for start in range(0, len(unique), KEYS_PER_LOOKUP):
            condition = query.one_of("correlation_id", unique[start : start + KEYS_PER_LOOKUP])
            pager = KeysetPager(self.client, self.guard, spec, 1000, extra=condition)
            for page in pager.pages():
                for row in page.records:
                    key = row.get("correlation_id", "")
                    if key in found:
                        log.warning("servicenow.duplicate_ticket", key=key, sys_id=row["sys_id"])
                        continue
                    found[key] = self._ref(row)
        return found

    def unresolved(self, people: Sequence[Person]) -> tuple[Person, ...]:
        """People without a sys_user record (looked up in batches by email)."""
        self.people.prepare(people)
        return tuple(p for p in people if not self.people.sys_id(p))

    def linked(self, refs: Sequence[TicketRef]) -> dict[str, tuple[LinkedTicket, ...]]:
        """Tasks (any task table) whose parent is one of ours and that slm-sync did not make:
        from the ticket book where its read took them (`read_states`), else read by parent,
        one query per 50 (a task the book knows to be gone has none)."""
        found: dict[str, tuple[LinkedTicket, ...]] = {}
        known = self.known_states
        by_id: dict[str, str] = {}
        for ref in refs:
            state = known.states.get(ref.key) if known is not None else None
            if state is not None and state.links is not None:
                found[ref.key] = state.links
            elif known is None or ref.key not in known.gone:
                by_id[ref.id] = ref.key
        read: dict[str, list[LinkedTicket]] = {key: [] for key in by_id.values()}
        spec = StreamSpec("task", LINK_FIELDS)
        ids = list(by_id)
        for start in range(0, len(ids), KEYS_PER_LOOKUP):
            condition = query.sys_ids_in("parent", ids[start : start + KEYS_PER_LOOKUP])
            condition += f"^{NOT_OURS}"
            for page in KeysetPager(self.client, self.guard, spec, 1000, extra=condition).pages():
                for row in page.records:
                    parent = by_id.get(str(row.get("parent", "")))
                    if parent is not None:
                        read[parent].append(self._linked(row))
        found.update({key: tuple(sorted(items, key=_link_order)) for key, items in read.items()})
        return found

    def _linked(self, row: Record) -> LinkedTicket:
        sys_id = str(row.get("sys_id", ""))
        table = str(row.get("sys_class_name") or "task")
        return LinkedTicket(
            key=str(row.get("number") or sys_id),
            title=str(row.get("short_description") or row.get("number") or sys_id),
            done=row.get("active") == "false" or row.get("state") in CLOSED_STATES,
            url=record_url(self.base_url, table, sys_id),
        )

    def state(self, refs: Sequence[TicketRef], *, comments: bool = False) -> dict[str, TicketState]:
        """Status, done-ness, due date, closing time and assignee of tickets by ticket key
        (number); labels: marker and key. With `comments`, people's work notes and comments
        (see the module docstring)."""
        states: dict[str, TicketState] = {}
        known = self.known_states
        if known is not None:  # the ticket book: read only what it does not hold
            states = {ref.key: known.states[ref.key] for ref in refs if ref.key in known.states}
            refs = [r for r in refs if r.key not in known.states and r.key not in known.gone]
        held = set(states)
        ids = [ref.id for ref in refs]
        spec = StreamSpec(self.table, STATE_FIELDS)
        for start in range(0, len(ids), KEYS_PER_LOOKUP):
            condition = query.sys_ids_in("sys_id", ids[start : start + KEYS_PER_LOOKUP])
            for page in KeysetPager(self.client, self.guard, spec, 1000, extra=condition).pages():
                for row in page.records:
                    ref = self._ref(row)
                    states[ref.key] = _state(ref, row)
        if comments:
            self._with_comments({k: v for k, v in states.items() if k not in held}, states)
        return states

    def read_ahead(self, refs: Sequence[TicketRef]) -> None:
        """Read the managed fields of the records a cycle is about to update, one `sys_idIN`
        query per 50, so `update` needs no GET of its own until `forget_read_ahead` (the next
        cycle). The Table API reads the database (no index lag); our own PATCH keeps the copy
        true, and an update only sends managed fields whose value differs from it, so a
        person's edit since the read is never undone by it. (A record's attachments are still
        listed one record at a time.)"""
        ids = [ref.id for ref in refs if ref.id and ref.id not in self._ahead]
        fields = ("sys_id", *MANAGED_FIELDS)
        for start in range(0, len(ids), KEYS_PER_LOOKUP):
            chunk = ids[start : start + KEYS_PER_LOOKUP]
            wanted = len(chunk)  # all found: no empty page to confirm the end
            rows = read_by_id(
                self.client, self.guard, self.table, query.sys_ids_in("sys_id", chunk), fields,
                wanted, complete=partial(_all_found, wanted),
            )  # fmt: skip
            for row in rows:
                self._ahead[str(row.get("sys_id", ""))] = dict(row)

    def forget_read_ahead(self) -> None:
        """A new cycle: what was read ahead for the last one is not used again."""
        self._ahead.clear()

    def read_states(self, mark: str | None, margin_seconds: float) -> StateRead:
        """Every task of ours (`correlation_display`) updated since `mark` (when the previous
        read started, UTC) less the margin, with its work notes and its child tasks (`links`,
        see `linked`); all of them when `mark` is None. Stamps are compared as stored (UTC,
        `sysparm_display_value=false`), so the integration user's time zone cannot shift the
        window; the margin covers a skew between our clock and the instance's and transactions
        that commit late. Tasks the ticket book holds at the same version are not read again
        (no journal read for them; an incremental read leaves them out, a full read answers
        with the book's state): the same `sys_updated_on` and `sys_mod_count` (stamps have
        whole seconds, so a person's edit in the second of our own last write keeps the stamp;
        the update count still moves).

        One keyset read over `task`, in two NQ groups: our tasks (`sys_class_name INSTANCEOF`
        the review table), and the tasks of any class whose `parent` is one of ours and that
        are not ours (people's improvement actions), both in the window. A child's change does
        not touch its parent's `sys_updated_on`, hence the second group: a child added,
        renamed, closed or moved between our tasks amends the links the book holds for its
        parent (that state is returned too, without a journal read). A deleted child leaves no
        row to read, and one moved to a task not ours no row in the second group: both stay in
        the book until the next full read (`sync.ticket_full_read_seconds`), which rebuilds
        every task's links from its current children."""
        started = datetime.now(UTC)
        window, since = "", None
        if mark:
            since = datetime.strptime(mark, STAMP) - timedelta(seconds=margin_seconds)
            window = query.since_stamp(since.strftime(STAMP))
        fields = (*STATE_FIELDS, *LINK_FIELDS, "sys_mod_count", "sys_created_on")
        spec = StreamSpec("task", tuple(dict.fromkeys(fields)))
        pager = KeysetPager(self.client, self.guard, spec, 1000, extra=window,
                            either=(self._ours_query(), CHILDREN_QUERY))  # fmt: skip
        known = self.known_states.states if self.known_states is not None else {}
        states: dict[str, TicketState] = {}
        unchanged: dict[str, TicketState] = {}
        children: list[Record] = []
        for page in pager.pages():
            for row in page.records:
                if str(row.get("correlation_display", "")).casefold() != MARKER:
                    children.append(row)
                    continue
                ref = self._ref(row)
                held = known.get(ref.key)
                if held is None or _version(held.fields) != _version(row):
                    states[ref.key] = _state(ref, row)
                else:
                    unchanged[ref.key] = held
        self._with_comments(states, states)
        if mark is None:  # a full read answers for every task it found, changed or not
            found = {**unchanged, **states}
            links = self._children_of(found, children, dict.fromkeys(found, ()))
            states = {key: replace(state, links=links[key]) for key, state in found.items()}
        else:
            states = self._relinked(known, states, children, since)
        log.info("servicenow.tickets_read", changed=len(states), children=len(children),
                 full=mark is None)  # fmt: skip
        return StateRead(states, started.strftime(STAMP))

    def _ours_query(self) -> str:
        """Our tasks: the marker, in the review table or a table extending it."""
        ours = f"correlation_display={MARKER}"
        return ours if self.table == "task" else f"{ours}^sys_class_nameINSTANCEOF{self.table}"

    def _relinked(
        self,
        known: Mapping[str, TicketState],
        changed: Mapping[str, TicketState],
        children: Sequence[Record],
        since: datetime | None,
    ) -> dict[str, TicketState]:
        """The changed tasks with their links (the book's, amended by the children read), and
        the unchanged tasks whose links the children read amends. A task new to the book has
        the children read for links when it was created inside the window (none can be older),
        else None: `linked` then reads them."""
        start = since.strftime(STAMP) if since is not None else ""
        base: dict[str, tuple[LinkedTicket, ...] | None] = {
            key: state.links for key, state in known.items()
        }
        for key, state in changed.items():
            if key in known:
                base[key] = known[key].links
            else:
                created = str(state.fields.get("sys_created_on") or "")
                base[key] = () if created and created >= start else None
        everything = {**known, **changed}
        links = self._children_of(everything, children, base)
        result = {key: replace(state, links=links[key]) for key, state in changed.items()}
        for key, state in known.items():
            if key not in result and links[key] != state.links:
                result[key] = replace(state, links=links[key])
        return result

    def _children_of(
        self,
        states: Mapping[str, TicketState],
        children: Sequence[Record],
        base: Mapping[str, tuple[LinkedTicket, ...] | None],
    ) -> dict[str, tuple[LinkedTicket, ...] | None]:
        """`base` (each task's links, None where unknown) with every child row put under its
        parent, where the parent is one of `states` with known links, and taken from under the
        task that held it before (it moved)."""
        by_id = {state.ref.id: key for key, state in states.items()}
        found = {key: list(links) if links is not None else None for key, links in base.items()}
        holder = {link.key: key for key, links in found.items() for link in links or ()}
        for row in children:
            child = self._linked(row)
            parent = by_id.get(str(row.get("parent", "")))
            before = holder.pop(child.key, None)
            if before is not None and (held := found.get(before)) is not None:
                held[:] = [link for link in held if link.key != child.key]
            target = found.get(parent) if parent is not None else None
            if parent is not None and target is not None:
                target.append(child)
                holder[child.key] = parent
        return {
            key: tuple(sorted(links, key=_link_order)) if links is not None else None
            for key, links in found.items()
        }

    def _with_comments(
        self, wanted: Mapping[str, TicketState], states: dict[str, TicketState]
    ) -> None:
        """Put each `wanted` ticket's journal entries, oldest first, into its state."""
        if not wanted:
            return
        keys = {state.ref.id: key for key, state in wanted.items()}
        entries = self.journal.entries(list(keys))
        self._learn_writers(e.user_name for found in entries.values() for e in found)
        me = self.integration_user().casefold()
        for sys_id, key in keys.items():
            comments = tuple(
                TicketComment(
                    author=self.journal.email(entry.user_name),
                    created=entry.created,
                    text=entry.text,
                    ours=bool(me) and entry.user_name.casefold() == me,
                )
                for entry in entries.get(sys_id, [])
            )
            states[key] = replace(states[key], comments=comments)

    def _learn_writers(self, user_names: Iterable[str]) -> None:
        """E-mails of the writers; without them, writers are named by user name."""
        try:
            self.journal.learn_emails(user_names)
        except FatalError:
            raise
        except ConnectorError as error:
            log.warning("servicenow.writer_lookup_failed", error=str(error))

    def integration_user(self) -> str:
        """The user_name slm-sync writes as: `servicenow.username`, or (OAuth) the user the
        instance names for `javascript:gs.getUserID()`, read once; "" if it cannot be told."""
        if self._me is None:
            self._me = self.settings.username or self._token_user()
        return self._me

    def _token_user(self) -> str:
        table = self.settings.tables.people
        result = self.guard.call(
            lambda: self.client.list(
                table,
                query="sys_id=javascript:gs.getUserID()",
                fields=("sys_id", "user_name"),
                limit=1,
            ),
            what=f"table {table} (own user)",
        )
        name = str(result.records[0].get("user_name", "")) if result.records else ""
        if not name:
            log.warning(
                "servicenow.integration_user_unknown",
                hint="set servicenow.username to the integration user's user_name, so its own "
                "work notes are not read as people's",
            )
        return name

    # --- duplicate audit ----------------------------------------------------------------------

    def ours_created_since(self, since: datetime | None) -> list[tuple[str, TicketRef, bool]]:
        """(key, ticket, done) of every ticket of ours created since `since` (all if None),
        oldest first: one keyset read, for the duplicate audit."""
        condition = f"correlation_display={MARKER}"
        if since is not None:
            condition += f"^sys_created_on>={since.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
        spec = StreamSpec(self.table, (*STATE_FIELDS, "sys_created_on"))
        rows = [
            row
            for page in KeysetPager(self.client, self.guard, spec, 1000, extra=condition).pages()
            for row in page.records
        ]
        rows.sort(key=lambda row: (str(row.get("sys_created_on", "")), str(row.get("number"))))
        return [
            (
                str(row.get("correlation_id", "")),
                self._ref(row),
                row.get("active") == "false" or row.get("state") in CLOSED_STATES,
            )
            for row in rows
            if row.get("correlation_id")
        ]

    def retire_duplicate(self, duplicate: TicketRef, survivor: TicketRef) -> None:
        """Close `duplicate` as Closed Skipped with a work note naming `survivor`; nothing is
        deleted and its correlation_id stays (lookups keep the oldest record)."""
        note = f"Closed by slm-sync: a duplicate of {survivor.key}, which carries the review."
        self.guard.call(
            lambda: self.client.patch(
                self.table,
                duplicate.id,
                {"state": SKIPPED, "work_notes": note},
                fields=TICKET_FIELDS,
            ),
            what=f"{self.table} record {duplicate.key}",
        )

    # --- writes -------------------------------------------------------------------------------

    def close(self, ref: TicketRef) -> bool:
        """Set the task to Closed Complete (all its work is done); always possible, so True."""
        self.guard.call(
            lambda: self.client.patch(
                self.table, ref.id, {"state": CLOSED_COMPLETE}, fields=TICKET_FIELDS
            ),
            what=f"{self.table} record {ref.key}",
        )
        log.info("ticket.state_set", system=SYSTEM, ticket=ref.key, state=CLOSED_COMPLETE)
        return True

    def create(
        self, specs: Sequence[TicketSpec], parents: Mapping[str, TicketRef]
    ) -> list[CreateResult]:
        """One insert per spec, in order; a parent created earlier in `specs` is used at once."""
        self.people.prepare(_people_of(specs))
        known = dict(parents)
        results: list[CreateResult] = []
        for index, spec in enumerate(specs):
            if index:
                crash_point("mid_bulk")
            result = self._create_one(spec, known)
            if result.ref is not None:
                known[spec.key] = result.ref
            results.append(result)
        return results

    def _create_one(self, spec: TicketSpec, parents: Mapping[str, TicketRef]) -> CreateResult:
        if spec.parent_key and spec.parent_key not in parents:
            return CreateResult(spec.key, None, f"parent {spec.parent_key} has no ticket yet")
        try:
            payload = self._fields(spec, parents)
            result = self.guard.call(
                lambda: self.client.create(self.table, payload, fields=TICKET_FIELDS),
                what=f"new {self.table} record {spec.key}",
                repeatable=False,
            )
        except FatalError:
            raise
        except ConnectorError as error:
            return CreateResult(spec.key, None, str(error), outcome_unknown(error))
        if not result.records:  # a 201 without the record: it was made, we cannot tell which
            return CreateResult(spec.key, None, f"{SYSTEM} answered no record for {spec.key}", True)
        ref = self._ref(result.records[0])
        log.info("ticket.created", system=SYSTEM, key=spec.key, ticket=ref.key)
        return CreateResult(spec.key, ref)

    def update(self, ref: TicketRef, spec: TicketSpec) -> None:
        """Read the ticket's managed fields, PATCH only those that differ from `spec`."""
        self.people.prepare(_people_of([spec]))
        current = self._ahead.get(ref.id) or self._current(ref)
        parents = (
            {spec.parent_key: TicketRef("", current.get("parent", ""))} if spec.parent_key else {}
        )
        desired = self._fields(spec, parents)
        changed = {
            name: value
            for name, value in desired.items()
            if _normal(name, value) != _normal(name, str(current.get(name, "")))
        }
        if not changed:
            return
        self.guard.call(
            lambda: self.client.patch(self.table, ref.id, changed, fields=TICKET_FIELDS),
            what=f"{self.table} record {ref.key}",
        )
        if ref.id in self._ahead:  # a second write this cycle compares with this one
            self._ahead[ref.id] = {**self._ahead[ref.id], **changed}
        log.info("ticket.updated", system=SYSTEM, ticket=ref.key, fields=sorted(changed))

    def comment(self, ref: TicketRef, body: Document) -> None:
        """Add a work note (journal entry) with the rendered document."""
        self.guard.call(
            lambda: self.client.patch(
                self.table, ref.id, {"work_notes": render_text(body)}, fields=TICKET_FIELDS
            ),
            what=f"work note on {self.table} record {ref.key}",
            repeatable=False,
        )

    def attach(self, ref: TicketRef, filename: str, content: bytes, content_type: str) -> str:
        """Attach a file through the Attachment API; the new attachment's sys_id."""
        result = self.guard.call(
            lambda: self.client.upload(self.table, ref.id, filename, content, content_type),
            what=f"attachment {filename} on {ref.key}",
            repeatable=False,
        )
        return str(result.records[0].get("sys_id") or "") if result.records else ""

    @property
    def shows_attachments(self) -> bool:
        """The description links the chart by its attachment's sys_id."""
        return True

    def show_attachment(self, key: str, attachment_id: str) -> None:
        """The record of ticket `key` (idempotency key) links its chart at `attachment_id`
        from now on: its description renders with it."""
        self._shown[key] = attachment_id

    def _image_url(self, key: str) -> str | None:
        attachment_id = self._shown.get(key)
        return record_url(self.base_url, "sys_attachment", attachment_id) if attachment_id else None

    def attachments(self, ref: TicketRef, filename: str) -> list[AttachedFile]:
        """The record's attachments named `filename` (to recognise a chart already there)."""
        result = self.guard.call(
            lambda: self.client.attachments(self.table, ref.id, filename),
            what=f"attachments of {ref.key}",
        )
        return [
            AttachedFile(
                name=filename,
                size=int(str(row.get("size_bytes") or "0") or 0),
                read=partial(self._download, str(row.get("sys_id", ""))),
                id=str(row.get("sys_id", "")),
            )
            for row in result.records
            if row.get("file_name") == filename
        ]

    def remove_attachment(self, ref: TicketRef, attached: AttachedFile) -> None:
        """Delete an attachment slm-sync replaced (an older version of the record's chart)."""

        def send() -> TableResult:
            self.client.delete_attachment(attached.id)
            return TableResult([])

        self.guard.call(send, what=f"attachment {attached.name} on {ref.key}")

    def _download(self, attachment_sys_id: str) -> bytes:
        content: list[bytes] = []

        def send() -> TableResult:
            content.append(self.client.download(attachment_sys_id))
            return TableResult([])

        self.guard.call(send, what=f"attachment {attachment_sys_id}")
        return content[-1]

    def comment_texts(self, ref: TicketRef, latest: int) -> list[str]:
        """The record's work notes (one text: the journal as the Table API displays it)."""
        text: list[str] = []

        def send() -> TableResult:
            text.append(self.client.journal(self.table, ref.id, "work_notes"))
            return TableResult([])

        self.guard.call(send, what=f"work notes of {ref.key}")
        return text[-1:]

    # --- helpers ------------------------------------------------------------------------------

    def _current(self, ref: TicketRef) -> Record:
        result = self.guard.call(
            lambda: self.client.get(self.table, ref.id, fields=("sys_id", *MANAGED_FIELDS)),
            what=f"{self.table} record {ref.key}",
        )
        if not result.records:
            raise ConnectorError(f"{SYSTEM}: {self.table} record {ref.key} is gone", system=SYSTEM)
        return result.records[0]

    def _fields(self, spec: TicketSpec, parents: Mapping[str, TicketRef]) -> dict[str, str]:
        """The record `spec` describes, as Table API string values."""
        watchers = [*(p for p in spec.consulted), *(p for p in spec.informed)]
        if spec.accountable is not None:
            watchers.insert(0, spec.accountable)
        return {
            "short_description": spec.title[:160],
            "description": render_text(spec.body, lambda image: self._image_url(spec.key))
            + _raci_footer(spec),
            "correlation_id": query.ticket_key(spec.key),
            "correlation_display": MARKER,
            "assigned_to": self.people.sys_id(spec.assignee) if spec.assignee else "",
            "watch_list": ",".join(dict.fromkeys(self.people.watcher(p) for p in watchers if p)),
            "due_date": f"{spec.due.isoformat()} 23:59:59" if spec.due else "",
            "parent": parents[spec.parent_key].id if spec.parent_key else "",
        }

    def _ref(self, row: Record) -> TicketRef:
        sys_id = str(row.get("sys_id", ""))
        url = record_url(self.base_url, self.table, sys_id)
        return TicketRef(key=str(row.get("number") or sys_id), id=sys_id, url=url)


def _state(ref: TicketRef, row: Record) -> TicketState:
    labels = tuple(x for x in (MARKER, row.get("correlation_id", "")) if x)
    done = row.get("active") == "false" or row.get("state") in CLOSED_STATES
    assignee = (
        row.get("assigned_to.email") or row.get("assigned_to.user_name") or row.get("assigned_to")
    )
    return TicketState(
        ref,
        row.get("state", ""),
        done,
        labels,
        row,
        due=_day(row.get("due_date")),
        resolved=_utc(row.get("closed_at")) if done else None,
        assignee=str(assignee or ""),
    )


def _utc(value: Any) -> datetime | None:
    """A stored date-time ("YYYY-MM-DD HH:MM:SS", UTC as read by value), or None."""
    try:
        return datetime.strptime(str(value), STAMP).replace(tzinfo=UTC) if value else None
    except ValueError:
        return None


def _day(value: Any) -> date | None:
    """The UTC date of a stored date or date-time, or None."""
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _people_of(specs: Iterable[TicketSpec]) -> list[Any]:
    people: list[Any] = []
    for spec in specs:
        people += [spec.assignee, spec.accountable, *spec.consulted, *spec.informed]
    return [p for p in people if p is not None]


def _raci_footer(spec: TicketSpec) -> str:
    """Roles a task record has no field for, named at the end of the description."""
    lines = []
    if spec.accountable is not None:
        lines.append(f"Accountable: {spec.accountable.name}")
    if spec.consulted:
        lines.append("Consulted: " + ", ".join(p.name for p in spec.consulted))
    if spec.informed:
        lines.append("Informed: " + ", ".join(p.name for p in spec.informed))
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def _normal(name: str, value: str) -> Any:
    """Compare as the instance stores: watch lists as sets, text without CR / edge blanks."""
    if name == "watch_list":
        return frozenset(v.strip() for v in value.split(",") if v.strip())
    return value.replace("\r\n", "\n").strip()


def _all_found(wanted: int, found: Sequence[Record]) -> bool:
    return len(found) >= wanted


def _link_order(link: LinkedTicket) -> tuple[str, str]:
    """Child tasks by number: the same order whichever read found them."""
    return link.key, link.url or ""


def _version(row: Mapping[str, Any]) -> tuple[str, str]:
    """A task's version as the Table API gives it: its last update and its update count."""
    return str(row.get("sys_updated_on") or ""), str(row.get("sys_mod_count") or "")
