"""What follows a ticket's create, as steps of the idempotency protocol: the chart attachment,
the change note (a comment / work note) and the watchers.

Each step is recorded `pending` (with the digest of what it sends) before its call and `done`
after it, in the ledger's `ticket_steps`. A step still pending next cycle may have reached the
target before the process died, so it is recognised before it is sent again: an attachment by
name and content hash, a note by its text among the ticket's latest comments; adding a watcher
twice is harmless, so it is simply done again. A ticket this process created in this run has
no attachment or comment yet and needs no such check; a ticket found by lookup (adopted) does.
A refreshed chart replaces its attachment: once the new file is there, older files of the same
name on the ticket are removed (only that name: `attainment-<service>.png` is ours).

Where the description shows the chart by its attachment id (Jira Cloud's inline ADF media,
ServiceNow's attachment link) the order is: upload (or recognise) the new file, point the
description at it, record that id (`chart_shown` done), then remove the older files. So the id a
description is rendered with always names a file that is there: a description is never pointed
at a removed file, and a killed run resumes from the file it uploaded. When the reconciler is
about to update an existing ticket whose chart changed too (`stage`), the new file is uploaded
(or recognised) first and recorded as `chart_shown` pending with its id, and the target is told
to render it: the reconciler's update is then the one description write, and `attach` after it
records `chart_shown` done and removes the older files. Where no update carried it (the pack is
unchanged, the ticket was just created, or the update failed and a later cycle finishes it)
`attach` points the description at the file with an update of its own. A pending `chart_shown`
names an uploaded file too, so a run that loads it may render it.

A prompted (webhook) cycle runs no chart step: its updates render the chart shown so far, and
the next regular cycle replaces it as above (the pack unchanged: `attach` with one description
write of its own, and no change note, which only a changed pack posts). Before its `attach`
calls the engine lets `read_ahead` read the tickets whose attachments they will list in bulk,
where the target can.

A failed step fails alone: it is logged, stays pending and is retried next cycle; the ticket
and every other step go on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol, runtime_checkable

import structlog

from connectors import AttachedFile, ConnectorError, FatalError, TargetConnector, TicketRef
from connectors.crashpoints import crash_point
from review import Document, Person, TicketSpec
from review.document import document_text
from sync.state import StateStore, StepRow

log = structlog.get_logger("slm_sync.steps")
CHART = "chart"
CHART_SHOWN = "chart_shown"  # its digest is the id of the attachment the description shows
NOTE = "note"
WATCH = "watch:"  # + the person's email: one step per watcher slm-sync added
RECENT_COMMENTS = 10  # a pending note is looked for among the ticket's latest comments


@runtime_checkable
class ReadsAttachments(Protocol):
    """A target that can list a ticket's attachments of one name (to recognise ours)."""

    def attachments(self, ref: TicketRef, filename: str) -> list[AttachedFile]: ...


@runtime_checkable
class RemovesAttachments(Protocol):
    """A target that can delete an attachment (an older version of our chart)."""

    def remove_attachment(self, ref: TicketRef, attached: AttachedFile) -> None: ...


@runtime_checkable
class ShowsAttachments(Protocol):
    """A target whose description shows the chart by its attachment id."""

    @property
    def shows_attachments(self) -> bool: ...

    def show_attachment(self, key: str, attachment_id: str) -> None: ...


@runtime_checkable
class ReadsAhead(Protocol):
    """A target that reads the tickets a cycle is about to write in bulk (`read_ahead`), so
    their updates and attachment listings need no read of their own, until the next cycle
    starts (`forget_read_ahead`)."""

    def read_ahead(self, refs: Sequence[TicketRef]) -> None: ...

    def forget_read_ahead(self) -> None: ...


def read_ahead(target: object, refs: Sequence[TicketRef]) -> None:
    """Read `refs` ahead where the target can; a failure only costs the reads it would save
    (each write then reads its ticket itself), so it is logged, never raised."""
    if not refs or not isinstance(target, ReadsAhead):
        return
    try:
        target.read_ahead(refs)
    except FatalError:
        raise
    except ConnectorError as error:
        log.warning("read_ahead.failed", tickets=len(refs), error=str(error))


def _shows(target: object) -> bool:
    return isinstance(target, ShowsAttachments) and target.shows_attachments


@runtime_checkable
class ReadsComments(Protocol):
    """A target that can read the plain text of a ticket's latest comments / work notes."""

    def comment_texts(self, ref: TicketRef, latest: int) -> list[str]: ...


@runtime_checkable
class KeepsWatchers(Protocol):
    """A target with watchers outside the ticket's fields (Jira)."""

    @property
    def watches(self) -> bool: ...

    def add_watcher(self, ref: TicketRef, person: Person) -> None: ...

    def remove_watcher(self, ref: TicketRef, person: Person) -> None: ...


def digest(content: bytes | str) -> str:
    """SHA-256 hex of what a step sends."""
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def words(text: str) -> str:
    """Text reduced to its words, so a note compares equal through ADF, wiki or a journal."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def _same(existing: Sequence[AttachedFile], content: bytes) -> AttachedFile | None:
    """The attachment among `existing` with exactly `content` (None: none)."""
    wanted = digest(content)
    return next(
        (a for a in existing if a.size == len(content) and digest(a.read()) == wanted), None
    )


@dataclass(frozen=True)
class _Staged:
    """A chart uploaded (or recognised) before the reconciler's update of its ticket."""

    digest: str  # of the chart's content
    attachment_id: str
    older: tuple[AttachedFile, ...]  # the files of its name it replaces
    written: bool = False  # the update went through: the description shows it


@dataclass
class FollowUps:
    """Runs the follow-up steps of tickets against one target, recording each in the store."""

    target: TargetConnector
    store: StateStore
    rows: dict[tuple[str, str], StepRow] = field(default_factory=dict)
    staged: dict[str, _Staged] = field(default_factory=dict)  # by key, in this run

    @classmethod
    def load(cls, target: TargetConnector, store: StateStore) -> FollowUps:
        """The steps recorded so far for `target` (one read per cycle); a target that shows
        charts by attachment id is told which attachment each ticket shows (or is about to
        show: a pending `chart_shown` names a file that was uploaded)."""
        rows = store.steps(target.system)
        if _shows(target):
            assert isinstance(target, ShowsAttachments)
            for (key, step), row in rows.items():
                if step == CHART_SHOWN:
                    target.show_attachment(key, row.digest)
        return cls(target, store, rows)

    # ---- the chart -----------------------------------------------------------------------
    def stage(self, key: str, ref: TicketRef, filename: str, content: bytes) -> None:
        """Before the reconciler updates the existing ticket `key`: where its description shows
        the chart by attachment id and the chart changed, upload (or recognise) `content` now,
        record its id (`chart_shown` pending) and tell the target, so that update renders the
        new file and `attach` needs no description write of its own. A failure is logged: the
        update renders the file shown so far and `attach` tries again after it."""
        target = self.target
        if not _shows(target) or not isinstance(target, ReadsAttachments):
            return
        wanted = digest(content)
        if self._current(key, wanted):
            return
        self._record(key, CHART, "pending", wanted)
        try:
            existing = target.attachments(ref, filename)
            same, attachment_id = self._upload_unless_there(ref, filename, content, existing)
            self._named(ref, attachment_id)
        except FatalError:
            raise
        except ConnectorError as error:
            log.warning("step.failed", key=key, step=CHART, error=str(error))
            return
        self._record(key, CHART_SHOWN, "pending", attachment_id)
        assert isinstance(target, ShowsAttachments)
        target.show_attachment(key, attachment_id)
        older = tuple(a for a in existing if a is not same)
        self.staged[key] = _Staged(wanted, attachment_id, older)

    def rendered(self, key: str) -> None:
        """The reconciler's update of `key` went through: its description shows the staged
        chart (if one was staged for it in this run)."""
        staged = self.staged.get(key)
        if staged is not None:
            self.staged[key] = replace(staged, written=True)

    def attach(
        self,
        key: str,
        ref: TicketRef,
        filename: str,
        content: bytes,
        *,
        fresh: bool,
        spec: TicketSpec | None = None,
    ) -> None:
        """Attach `content` as `filename` unless this very content is there already, point the
        description at it where the target shows charts by attachment id (`spec`: what the
        ticket must be) unless this run's update already did (`stage`), and remove older
        versions of it.

        `fresh`: the ticket was created by this run, so it has no attachment yet.
        """
        wanted = digest(content)
        showing = _shows(self.target) and spec is not None
        if self._attached(key, wanted, showing):
            return
        staged = self.staged.pop(key, None)
        if self._finishes(staged, wanted, showing):
            assert staged is not None
            self._run(key, CHART, wanted, lambda: self._finish(key, ref, filename, staged))
            return
        self._run(
            key, CHART, wanted, lambda: self._attach(key, ref, filename, content, fresh, spec)
        )

    def read_ahead(
        self,
        charts: Sequence[tuple[str, TicketRef, Callable[[], bytes | None], TicketSpec | None]],
    ) -> None:
        """Before `attach` of these charts (key, ticket, content, spec as `attach` takes them;
        the content asked for only where this ticket has a chart step already, so a chart
        still being drawn is not waited for; None: no chart after all): the tickets whose
        attachments `attach` will list and whose description it may write (a ticket created in
        this run: its description) are read in one go where the target can (`ReadsAhead`)
        instead of one read each."""
        due = []
        for key, ref, content, spec in charts:
            staged = self.staged.get(key)
            if staged is None and (key, CHART) not in self.rows:  # no chart yet, whichever
                due.append(ref)
                continue
            chart = content()
            if chart is None:
                continue
            wanted, showing = digest(chart), _shows(self.target) and spec is not None
            if not self._attached(key, wanted, showing) and not self._finishes(
                staged, wanted, showing
            ):
                due.append(ref)
        read_ahead(self.target, due)

    def _attached(self, key: str, wanted: str, showing: bool) -> bool:
        """Whether the ticket carries the chart `wanted` (and its description shows it)."""
        return self._current(key, wanted) if showing else self._done(key, CHART, wanted)

    @staticmethod
    def _finishes(staged: _Staged | None, wanted: str, showing: bool) -> bool:
        """Whether the reconciler's update already showed this staged chart: `attach` only
        records it and removes the older files."""
        return staged is not None and staged.written and staged.digest == wanted and showing

    def _current(self, key: str, wanted: str) -> bool:
        """Whether the chart step of `key` is done with `wanted` and the description shows it."""
        return self._done(key, CHART, wanted) and self._done(key, CHART_SHOWN)

    def _attach(
        self,
        key: str,
        ref: TicketRef,
        filename: str,
        content: bytes,
        fresh: bool,
        spec: TicketSpec | None,
    ) -> None:
        target = self.target
        existing: list[AttachedFile] = []
        if not fresh and isinstance(target, ReadsAttachments):
            existing = target.attachments(ref, filename)
        same, attachment_id = self._upload_unless_there(ref, filename, content, existing)
        if spec is not None and _shows(target):
            self._show(key, ref, spec, attachment_id)
        self._remove(ref, filename, [a for a in existing if a is not same])

    def _upload_unless_there(
        self, ref: TicketRef, filename: str, content: bytes, existing: Sequence[AttachedFile]
    ) -> tuple[AttachedFile | None, str]:
        """The file among `existing` with this very content (recognised), else an upload:
        that file (None when uploaded) and the attachment id now carrying `content`."""
        same = _same(existing, content)
        if same is None:
            return None, self._upload(ref, filename, content)
        log.info("chart.recognised", ticket=ref.key, filename=filename)
        return same, same.id

    def _upload(self, ref: TicketRef, filename: str, content: bytes) -> str:
        attachment_id = self.target.attach(ref, filename, content, "image/png")
        log.info("chart.attached", ticket=ref.key, filename=filename)
        crash_point("after_upload")
        return attachment_id

    def _named(self, ref: TicketRef, attachment_id: str) -> None:
        if not attachment_id:  # next cycle recognises the file by its content, with its id
            raise ConnectorError(
                f"{self.target.system}: the upload of the chart on {ref.key} did not name the "
                "attachment it created",
                system=self.target.system,
            )

    def _show(self, key: str, ref: TicketRef, spec: TicketSpec, attachment_id: str) -> None:
        """Point the description at the attachment `attachment_id`, then remember it."""
        self._named(ref, attachment_id)
        assert isinstance(self.target, ShowsAttachments)
        self.target.show_attachment(key, attachment_id)
        self.target.update(ref, spec)
        crash_point("after_show")
        self._shown(key, ref, attachment_id)

    def _finish(self, key: str, ref: TicketRef, filename: str, staged: _Staged) -> None:
        """The reconciler's update pointed the description at the staged file: remember it,
        then remove the older files."""
        crash_point("after_show")
        self._shown(key, ref, staged.attachment_id)
        self._remove(ref, filename, staged.older)

    def _shown(self, key: str, ref: TicketRef, attachment_id: str) -> None:
        self._record(key, CHART_SHOWN, "done", attachment_id)
        log.info("chart.shown", ticket=ref.key, attachment=attachment_id)

    def _remove(self, ref: TicketRef, filename: str, older: Sequence[AttachedFile]) -> None:
        target = self.target
        if isinstance(target, RemovesAttachments):
            for file in older:
                target.remove_attachment(ref, file)
                log.info("chart.replaced", ticket=ref.key, filename=filename, removed=file.id)

    # ---- the change note -----------------------------------------------------------------
    def comment(self, key: str, ref: TicketRef, note: Document, spec_hash: str) -> None:
        """Post `note` once for this version of the ticket (`spec_hash`); its text recognises it
        if an earlier run may have posted it already."""
        text = document_text(note)
        wanted = digest(f"{spec_hash}\n{words(text)}")
        if self._done(key, NOTE, wanted):
            return
        row = self.rows.get((key, NOTE))
        unsure = row is not None and row.digest == wanted
        self._run(key, NOTE, wanted, lambda: self._comment(ref, note, text, unsure), strict=True)

    def _comment(self, ref: TicketRef, note: Document, text: str, unsure: bool) -> None:
        if unsure and isinstance(self.target, ReadsComments):
            latest = self.target.comment_texts(ref, RECENT_COMMENTS)
            if any(words(text) in words(posted) for posted in latest):
                log.info("note.recognised", ticket=ref.key)
                return
        self.target.comment(ref, note)

    # ---- watchers ------------------------------------------------------------------------
    def watch(self, key: str, ref: TicketRef, spec: TicketSpec) -> None:
        """Watchers follow the consulted and informed people: one step per person (`watch:` and
        the email), added when they join the list, removed when they leave it. People who
        watch a ticket on their own are never touched: only those slm-sync added."""
        target = self.target
        if not isinstance(target, KeepsWatchers) or not target.watches:
            return
        wanted = {p.email.casefold(): p for p in (*spec.consulted, *spec.informed) if p.email}
        ours = {
            step.removeprefix(WATCH): row
            for (k, step), row in self.rows.items()
            if k == key and step.startswith(WATCH)
        }
        for email, person in wanted.items():
            row = ours.get(email)
            if row is None or row.state != "done":
                self._run(
                    key, WATCH + email, digest(email), partial(target.add_watcher, ref, person)
                )
        for email in set(ours) - set(wanted):
            self._unwatch(key, ref, email, target)

    def _unwatch(self, key: str, ref: TicketRef, email: str, target: KeepsWatchers) -> None:
        try:
            target.remove_watcher(ref, Person(name=email, email=email))
        except FatalError:
            raise
        except ConnectorError as error:
            log.warning("step.failed", key=key, step=WATCH + email, error=str(error))
            return
        self.store.forget_step(self.target.system, key, WATCH + email)
        del self.rows[key, WATCH + email]

    def keys_with_watchers_pending(self) -> set[str]:
        """Every key an earlier run left a watcher pending of (`watchers_pending` of each)."""
        return {
            k
            for (k, step), row in self.rows.items()
            if step.startswith(WATCH) and row.state != "done"
        }

    def watchers_pending(self, key: str) -> bool:
        """Whether an earlier run left a watcher of `key` pending."""
        return any(
            k == key and step.startswith(WATCH) and row.state != "done"
            for (k, step), row in self.rows.items()
        )

    # ---- one step ------------------------------------------------------------------------
    def _run(
        self, key: str, step: str, wanted: str, call: Callable[[], None], *, strict: bool = False
    ) -> None:
        """Pending, the call, done. A failure stays pending; `strict` re-raises it."""
        self._record(key, step, "pending", wanted)
        try:
            call()
            crash_point("after_step")
        except FatalError:
            raise
        except ConnectorError as error:
            if strict:
                raise
            log.warning("step.failed", key=key, step=step, error=str(error))
            return
        self._record(key, step, "done", wanted)

    def _record(self, key: str, step: str, state: str, wanted: str) -> None:
        """The step's state in the ledger and in this cycle's copy of it."""
        self.store.record_step(self.target.system, key, step, state=state, digest=wanted)
        self.rows[key, step] = StepRow(key, step, state, wanted)

    def _done(self, key: str, step: str, wanted: str | None = None) -> bool:
        """Whether `step` of `key` is done (with the digest `wanted`, when given)."""
        row = self.rows.get((key, step))
        return row is not None and row.state == "done" and wanted in (None, row.digest)
