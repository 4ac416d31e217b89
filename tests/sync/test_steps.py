"""Follow-up steps: a change note an earlier run may have posted is recognised, not re-posted."""

from __future__ import annotations

from connectors import TicketRef
from review import Document
from review.document import BulletList, document_text, paragraph, text
from sync.state import StateStore
from sync.steps import NOTE, FollowUps


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
