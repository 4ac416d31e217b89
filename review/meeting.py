"""The review meeting in the pack: when, who is invited and who attended, the agenda, and the
decisions and actions recorded in the review's tickets.

The tickets are the record of the meeting; people follow three conventions, which the pack
itself states where they read it:
- the meeting date is the due date of the "Schedule service review" sub-task, shown once that
  sub-task is done (until then the pack says it is not scheduled yet);
- each responsible person of "Participate in service review" closes their own sub-task after
  the meeting: that records their attendance;
- a decision is a comment on the review ticket or one of its sub-tasks that starts with
  `Decision:` (`Decision (policy):` for a change to the process policies, which "Update process
  policies" lists); improvement actions are tickets linked to the review ticket.

Invitees come from the RACI matrix: the R, A and C roles of "Participate in service review"
for the service, plus its business owner. Pure: the sync layer reads the tickets and passes the
facts in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from review import document as doc
from review.model import Decision, Invitee, Meeting, Person, Service
from review.raci import Letter, RaciMatrix
from review.references import material_reference, person_mention
from review.roles import RoleHolders, identity, service_role_holders

MEETING_HEADING = "Meeting"
AGENDA_HEADING = "Agenda"
DECISIONS_HEADING = "Decisions and actions"
SCHEDULE_ACTIVITY = "schedule_review"
PARTICIPATE_ACTIVITY = "participate_review"
BUSINESS_OWNER = "Business owner"
DECISION_PREFIX = "Decision:"
POLICY_PREFIX = "Decision (policy):"
# Our comment on a review ticket when its pack is frozen: read back, it says the pack was given
# its last version (a lost state file then never renders the pack again).
FROZEN_NOTE = "The review pack is frozen"
MAX_DECISION_LENGTH = 500  # a decision is a line in a table, not an essay
INVITED_LETTERS = (Letter.A, Letter.R, Letter.C)  # shown in the seed's order: A/R, A/C
_DECISION = re.compile(
    r"^\s*decision\s*(?:\(\s*(?P<policy>policy)\s*\))?\s*:\s*(?P<text>\S.*)\Z",
    re.IGNORECASE | re.DOTALL,
)


def parse_decision(text: str) -> tuple[bool, str] | None:
    """(policy change?, the decision) of a comment that records one, else None.

    `Decision: …` and `Decision (policy): …`, in any letter case; the words after the colon are
    the decision, on one line (a decision with nothing after the colon is no decision)."""
    match = _DECISION.match(text)
    if match is None:
        return None
    words = " ".join(match.group("text").split())
    if len(words) > MAX_DECISION_LENGTH:
        words = words[: MAX_DECISION_LENGTH - 1] + "…"
    return match.group("policy") is not None, words


def decision_from(
    text: str,
    *,
    author: str,
    recorded: datetime,
    ticket: str,
    url: str | None = None,
    service_key: str | None = None,
) -> Decision | None:
    """The decision a comment records, or None if it records none."""
    parsed = parse_decision(text)
    if parsed is None:
        return None
    policy, words = parsed
    return Decision(
        text=words,
        author=author,
        recorded=recorded,
        policy=policy,
        ticket=ticket,
        url=url,
        service_key=service_key,
    )


def invitees(matrix: RaciMatrix, service: Service, holders: RoleHolders) -> tuple[Invitee, ...]:
    """Who the review meeting invites: the R, A and C people of "Participate in service review"
    (matrix column order), then the business owner; each person once, with all their parts."""
    roles: dict[str, list[str]] = {}
    people: dict[str, Person] = {}
    activity = next((a for a in matrix.activities if a.id == PARTICIPATE_ACTIVITY), None)
    for role, letters in activity.raci if activity else ():
        shown = "/".join(letter.value for letter in INVITED_LETTERS if letter in letters)
        if not shown:
            continue
        for person in service_role_holders(role, service, holders):
            people.setdefault(identity(person), person)
            roles.setdefault(identity(person), []).append(f"{role.display_name} ({shown})")
    if service.business_owner is not None:
        who = identity(service.business_owner)
        people.setdefault(who, service.business_owner)
        roles.setdefault(who, []).append(BUSINESS_OWNER)
    return tuple(Invitee(person=people[who], roles=tuple(parts)) for who, parts in roles.items())


def activity_name(matrix: RaciMatrix, activity_id: str, default: str) -> str:
    """The matrix's name of an activity (an admin may rename it), else `default`."""
    return next((a.name for a in matrix.activities if a.id == activity_id), default)


def meeting_blocks(meeting: Meeting, agenda: Sequence[str]) -> list[doc.Block]:
    """The pack's first section: date, invitees, attendance and the agenda."""
    return [
        doc.heading(2, MEETING_HEADING),
        _date(meeting),
        doc.paragraph(doc.text("Invited", strong=True), " (from the RACI matrix):"),
        _invitee_list(meeting.invitees),
        *_attendance(meeting),
        doc.heading(3, AGENDA_HEADING),
        doc.BulletList(
            items=tuple((doc.text(f"{n}. {item}"),) for n, item in enumerate(agenda, start=1))
        ),
    ]


def decisions_blocks(meeting: Meeting) -> list[doc.Block]:
    """The pack's last section: how to record a decision, the decisions, the improvements."""
    blocks: list[doc.Block] = [
        doc.heading(2, DECISIONS_HEADING),
        doc.paragraph(
            doc.text("To record a decision", strong=True),
            ", comment on this ticket or one of its sub-tasks starting with ",
            doc.text(DECISION_PREFIX, strong=True),
            " (",
            doc.text(POLICY_PREFIX, strong=True),
            " for a change to the process policies). Link improvement tickets to this ticket "
            "(ServiceNow: make this task their parent). "
            + (
                f'"{meeting.participate_activity}" is done: this pack is frozen as the record of '
                "the review; decisions recorded from now on show in the cycle's lessons learned."
                if meeting.frozen
                else "The sync lists both here until "
                f'"{meeting.participate_activity}" is done, when the pack is frozen.'
            ),
        ),
    ]
    if meeting.decisions:
        blocks.append(decision_table(meeting.decisions, where=True))
    else:
        blocks.append(doc.paragraph("No decision recorded yet."))
    blocks.append(doc.heading(3, "Improvement actions"))
    if not meeting.improvements:
        blocks.append(doc.paragraph("No improvement ticket linked yet."))
        return blocks
    items = tuple(
        (
            *material_reference(m),
            doc.text(" (open)" if m.open else " (done)"),
        )
        for m in meeting.improvements
    )
    blocks.append(doc.BulletList(items=items))
    return blocks


def frozen_note(meeting: Meeting) -> doc.Document:
    """Our comment on a review ticket whose pack was just given its last version."""
    held = f" of {meeting.scheduled.isoformat()}" if meeting.scheduled else ""
    return doc.Document(
        blocks=(
            doc.paragraph(
                f"{FROZEN_NOTE}: it stays as the record of the review{held} "
                f'("{meeting.participate_activity}" is done). Decisions and improvement tickets '
                "recorded from now on show in the cycle's lessons learned, not in this pack."
            ),
        )
    )


def decision_table(
    decisions: Sequence[Decision], *, where: bool = False, services: dict[str, str] | None = None
) -> doc.Table:
    """Decisions oldest first: date, who, the decision (policy changes marked), and where it
    was recorded (the ticket) or, across reviews, which service."""
    rows = []
    for decision in sorted(decisions, key=lambda d: (d.recorded, d.ticket, d.text)):
        words: tuple[doc.Inline, ...] = (doc.text(decision.text),)
        if decision.policy:
            words = (doc.Status(text="POLICY", color=doc.StatusColor.YELLOW), doc.text(" "), *words)
        last: doc.Inline = doc.text(decision.ticket)
        if where and decision.url:
            last = doc.Link(text=decision.ticket, url=decision.url)
        elif not where:
            key = decision.service_key or ""
            last = doc.text((services or {}).get(key, key))
        rows.append(
            (
                (doc.text(decision.recorded.date().isoformat()),),
                (doc.text(decision.author),),
                words,
                (last,),
            )
        )
    return doc.Table(
        header=("Date", "By", "Decision", "Recorded in" if where else "Service"),
        rows=tuple(rows),
    )


def _date(meeting: Meeting) -> doc.Paragraph:
    if meeting.scheduled is None:
        return doc.paragraph(
            doc.Status(text="NOT SCHEDULED", color=doc.StatusColor.NEUTRAL),
            " Not scheduled yet: the date appears here when the ",
            f'"{meeting.schedule_activity}" sub-task is done (set its due date to the meeting '
            "date, then close it).",
        )
    return doc.paragraph(
        doc.text("Date: ", strong=True),
        doc.text(meeting.scheduled.isoformat(), strong=True),
        f' (the due date of the done "{meeting.schedule_activity}" sub-task).',
    )


def _invitee_list(people: Sequence[Invitee]) -> doc.Block:
    if not people:
        return doc.paragraph(
            "Nobody is named for this service's review yet: name the service owner on the "
            "service record and the process roles under review.roles in the settings."
        )
    return doc.BulletList(
        items=tuple(
            (
                person_mention(p.person),
                doc.text(": " + ", ".join(p.roles)),
            )
            for p in people
        )
    )


def _attendance(meeting: Meeting) -> list[doc.Block]:
    if not meeting.attendance:
        return []
    attended = [a.person for a in meeting.attendance if a.attended]
    missing = [a.person for a in meeting.attendance if not a.attended]
    return [
        doc.paragraph(
            doc.text("Attendance", strong=True),
            f': each responsible person closes their own "{meeting.participate_activity}" '
            "sub-task after the meeting.",
        ),
        doc.BulletList(
            items=(
                (doc.text("Attended: "), *_names(attended)),
                (doc.text("Not yet: "), *_names(missing)),
            )
        ),
    ]


def _names(people: Sequence[Person]) -> tuple[doc.Inline, ...]:
    if not people:
        return (doc.text("nobody"),)
    # Names, not mentions: the invitee list above already mentions (notifies) each of them.
    return (doc.text(", ".join(person.name for person in people)),)
