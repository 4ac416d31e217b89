"""Follow-up steps: a change note an earlier run may have posted is recognised, not re-posted;
a chart shown by attachment id is shown before its older file goes, and never uploaded twice."""

from __future__ import annotations

from connectors import AttachedFile, TicketRef
from review import Document, TicketKind, TicketSpec
from review.document import BulletList, document_text, paragraph, text
from sync.state import StateStore
from sync.steps import CHART, CHART_SHOWN, NOTE, FollowUps, digest


class _Commenting:
    """A target that keeps comments as the text a person would read in the ticket."""

    system = "fake"

    def __init__(self) -> None:
        self.posted: list[str] = []

    def comment(self, ref: TicketRef, body: Document) -> None:
        self.posted.append("* " + document_text(body).replace("\n", "\n* "))

    def comment_texts(self, ref: TicketRef, latest: int) -> list[str]:
        return self.posted[-latest:]


NOTE_BODY = Document(
    blocks=(
        paragraph("The review pack was refreshed:"),
        BulletList(items=((text("2 new breach(es) of Availability"),),)),
    )
)


def test_document_text_keeps_every_visible_word_in_order() -> None:
    assert document_text(NOTE_BODY) == (
        "The review pack was refreshed:\n2 new breach(es) of Availability"
    )


def test_a_pending_note_already_in_the_ticket_is_not_posted_again(
    sqlite_store: StateStore,
) -> None:
    """A run died after posting the note but before recording it: the next run finds the same
    words among the latest comments, marks the step done and posts nothing."""
    target = _Commenting()
    ref = TicketRef("T-1", "1")
    first = FollowUps.load(target, sqlite_store)  # type: ignore[arg-type]
    first.comment("k", ref, NOTE_BODY, "hash-1")
    sqlite_store.record_step(
        "fake", "k", NOTE, state="pending", digest=first.rows["k", NOTE].digest
    )
    again = FollowUps.load(target, sqlite_store)  # type: ignore[arg-type]
    again.comment("k", ref, NOTE_BODY, "hash-1")
    assert len(target.posted) == 1
    assert again.rows["k", NOTE].state == "done"
    again.comment("k", ref, NOTE_BODY, "hash-2")  # a new version of the pack: a new note
    assert len(target.posted) == 2


class _Showing:
    """A target whose description shows the chart by attachment id (as Jira Cloud's does):
    it keeps files by id and the id each update left the description showing."""

    system = "fake"
    shows_attachments = True

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.told: dict[str, str] = {}
        self.described = ""  # the attachment id the description shows
        self.uploads = 0
        self.writes = 0  # description updates

    def attach(self, ref: TicketRef, filename: str, content: bytes, content_type: str) -> str:
        self.uploads += 1
        attachment_id = str(100 + self.uploads)
        self.files[attachment_id] = content
        return attachment_id

    def attachments(self, ref: TicketRef, filename: str) -> list[AttachedFile]:
        return [
            AttachedFile(filename, len(data), lambda data=data: data, attachment_id)  # type: ignore[misc]
            for attachment_id, data in self.files.items()
        ]

    def remove_attachment(self, ref: TicketRef, attached: AttachedFile) -> None:
        assert attached.id != self.described, "never remove the file the description shows"
        del self.files[attached.id]

    def show_attachment(self, key: str, attachment_id: str) -> None:
        self.told[key] = attachment_id

    def update(self, ref: TicketRef, spec: TicketSpec) -> None:
        self.described = self.told[spec.key]
        self.writes += 1


SPEC = TicketSpec(key="k", kind=TicketKind.REVIEW, title="Review", body=Document())


def test_a_chart_attached_before_charts_were_shown_is_shown_without_a_new_upload(
    sqlite_store: StateStore,
) -> None:
    """A ticket whose chart step is done from a version that did not show charts inline: the
    next cycle recognises the file, points the description at it and uploads nothing; the one
    after that is told the id at load and does nothing."""
    target = _Showing()
    target.files["7"] = b"chart-1"
    sqlite_store.record_step("fake", "k", CHART, state="done", digest=digest(b"chart-1"))
    followups = FollowUps.load(target, sqlite_store)  # type: ignore[arg-type]
    followups.attach("k", TicketRef("T-1", "1"), "c.png", b"chart-1", fresh=False, spec=SPEC)
    assert (target.uploads, target.described) == (0, "7")
    assert followups.rows["k", CHART_SHOWN].digest == "7"
    later = _Showing()
    FollowUps.load(later, sqlite_store).attach(  # type: ignore[arg-type]
        "k", TicketRef("T-1", "1"), "c.png", b"chart-1", fresh=False, spec=SPEC
    )
    assert later.told == {"k": "7"} and later.described == "" and later.uploads == 0


def test_a_refreshed_chart_is_shown_before_the_old_file_is_removed(
    sqlite_store: StateStore,
) -> None:
    target = _Showing()
    ref = TicketRef("T-1", "1")
    FollowUps.load(target, sqlite_store).attach(  # type: ignore[arg-type]
        "k", ref, "c.png", b"chart-1", fresh=True, spec=SPEC
    )
    FollowUps.load(target, sqlite_store).attach(  # type: ignore[arg-type]
        "k", ref, "c.png", b"chart-2", fresh=False, spec=SPEC
    )
    assert target.files == {"102": b"chart-2"} and target.described == "102"


def _shown_once(sqlite_store: StateStore) -> tuple[_Showing, TicketRef]:
    target = _Showing()
    ref = TicketRef("T-1", "1")
    FollowUps.load(target, sqlite_store).attach(  # type: ignore[arg-type]
        "k", ref, "c.png", b"chart-1", fresh=True, spec=SPEC
    )
    target.writes = 0
    return target, ref


def test_a_chart_staged_before_the_update_takes_no_description_write_of_its_own(
    sqlite_store: StateStore,
) -> None:
    """Staged before the reconciler's update: the update shows the new file, `attach` records
    it and removes the old one without writing the description again."""
    target, ref = _shown_once(sqlite_store)
    followups = FollowUps.load(target, sqlite_store)  # type: ignore[arg-type]
    followups.stage("k", ref, "c.png", b"chart-2")
    staged = followups.rows["k", CHART_SHOWN]
    assert (staged.state, staged.digest, target.told["k"]) == ("pending", "102", "102")
    assert target.files.keys() == {"101", "102"}, "the old file stays until the update"
    target.update(ref, SPEC)  # the reconciler's update
    followups.rendered("k")
    followups.attach("k", ref, "c.png", b"chart-2", fresh=False, spec=SPEC)
    assert (target.writes, target.uploads, target.described) == (1, 2, "102")
    assert target.files == {"102": b"chart-2"}
    assert followups.rows["k", CHART_SHOWN].state == "done"
    assert followups.rows["k", CHART].state == "done"
    again = FollowUps.load(target, sqlite_store)  # type: ignore[arg-type]
    again.stage("k", ref, "c.png", b"chart-2")
    again.attach("k", ref, "c.png", b"chart-2", fresh=False, spec=SPEC)
    assert (target.writes, target.uploads) == (1, 2), "nothing left to do"


def test_a_staged_chart_whose_update_never_came_is_shown_by_the_next_run(
    sqlite_store: StateStore,
) -> None:
    """Killed (or the update refused) after staging: the next run is told the staged file at
    load, recognises it rather than uploading it again, and shows it with an update of its
    own before the old file goes."""
    target, ref = _shown_once(sqlite_store)
    FollowUps.load(target, sqlite_store).stage(  # type: ignore[arg-type]
        "k", ref, "c.png", b"chart-2"
    )
    target.told.clear()
    resumed = FollowUps.load(target, sqlite_store)  # type: ignore[arg-type]
    assert target.told == {"k": "102"}, "a pending chart_shown names an uploaded file"
    resumed.attach("k", ref, "c.png", b"chart-2", fresh=False, spec=SPEC)
    assert (target.writes, target.uploads, target.described) == (1, 2, "102")
    assert target.files == {"102": b"chart-2"}
    assert resumed.rows["k", CHART_SHOWN].state == "done"
