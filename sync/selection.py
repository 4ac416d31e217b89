"""The LT's selection, read back from the tickets every cycle: labels, notes, and typos told once.

How the LT selects (the same in every target; labels only where the target has them):
- a label on the cycle ticket: the service's token (`slm-select-email-and-calendar`), or the
  key form `slm-select-<service key>` of earlier versions (Jira);
- a comment / work note on the cycle ticket or on the selection sub-task, one service per line:
  its token or its exact name (case-insensitive), optionally after `select:`; a line
  `remove:` (or `unselect:`, `deselect:`) and a token or name takes one back. Several tokens
  may share a line. List bullets and quotes around an entry are ignored.
Labels count first, then the notes oldest first: for each service the last word wins. A line
that is neither a token nor prefixed is conversation unless it matches a name, or comes close to
one (then it is a typo); a token or a prefixed line that matches nothing is always a typo. Notes
slm-sync wrote itself are never read as selections.

What names no service is `Unmatched`: ignored for the selection (the cycle never waits for it),
listed in the cycle ticket, and told once in a comment on the cycle ticket naming the nearest
matches. "Once" survives a crash and a lost state file: an entry counts as told when a follow-up
step `unmatched:<hash>` of the cycle ticket is done or when a note of ours on the cycle ticket
quotes it. Taking back a typo (removing the label, or `remove:` with the same text) clears it.

Tokens are remembered in the mirror stream `selection_tokens` (service key -> the first token
it got), so a renamed service keeps its token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog

from connectors import (
    ConnectorError,
    FatalError,
    TargetConnector,
    TicketComment,
    TicketRef,
    TicketState,
)
from review import Document
from review import document as doc
from review.selection import (
    NEAREST_CUTOFF,
    SELECT_LABEL_PREFIX,
    Selectable,
    Unmatched,
    normalized,
)
from sync.state import MirrorRecord, StateStore

log = structlog.get_logger("slm_sync.selection")
TOKENS = "selection_tokens"  # mirror stream: service key -> {"token", "name"}
STEP = "unmatched:"  # + 12 hex of the entry: a ticket step of the cycle ticket
NOTICE = "slm-sync could not match these selection entries to a service"
PROSE_CUTOFF = 0.8  # an unprefixed line this close to a name or token is a typo, not prose
MAX_NAME_LINE = 120  # longer unprefixed lines are conversation
_VERB = re.compile(r"^(select|unselect|deselect|remove)\s*:\s*(.*)$", re.IGNORECASE)
_LIST_MARK = re.compile(r"^(?:[-*\u2022\u00b7]|\d+[.)])\s+")
_TOKEN = re.compile(r"slm-select-[^\s,;]+", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"
_TOKENS_ONLY = re.compile(rf"^(?:[{_QUOTES}]?slm-select-[^\s,;]+[\s,;]*)+$", re.IGNORECASE)
_WIKI_ESCAPE = re.compile(r"\\([\\*_+^~?{}\[\]|!#-])")  # Jira wiki markup's escaped characters
_QUOTED = re.compile(r"\u201c([^\u201d]*)\u201d")


@dataclass(frozen=True)
class Mark:
    """One entry the LT wrote: select or take back what `written` names.

    `explicit`: a token or a `select:` / `remove:` line, told when it matches nothing; other
    lines count only when they name a service (else they are conversation, or a close typo)."""

    written: str
    select: bool
    where: str
    explicit: bool = True


@dataclass(frozen=True)
class Choice:
    """What the tickets select now, and what they name that is no service."""

    selected: tuple[str, ...] = ()
    unmatched: tuple[Unmatched, ...] = ()


# ---- tokens --------------------------------------------------------------------------------
def remembered_selectable(store: StateStore, system: str) -> Selectable:
    """The mirrored services with their tokens, the first token each got kept (new ones are
    remembered now, so a later rename keeps them)."""
    names = {
        str(r.body.get("key") or r.key): str(r.body.get("name") or "")
        for r in store.mirrored("service")
    }
    remembered = {
        r.key: str(r.body["token"]) for r in store.mirrored(TOKENS) if r.body.get("token")
    }
    selectable = Selectable(names, remembered)
    fresh = [
        MirrorRecord(stream=TOKENS, key=key, body={"token": token, "name": names[key]},
                     service_key=key)
        for key, token in sorted(selectable.tokens.items())
        if remembered.get(key) != token
    ]  # fmt: skip
    if fresh:
        store.store_page(system, TOKENS, fresh, None)
        log.info("selection.tokens_remembered", services=len(fresh))
    return selectable


# ---- what people wrote ---------------------------------------------------------------------
def label_marks(labels: Iterable[str], where: str) -> list[Mark]:
    """A select mark per `slm-select-…` label."""
    return [Mark(label, True, where) for label in labels if _is_token(label)]


def note_marks(text: str, where: str) -> list[Mark]:
    """The entries of one note, line by line (see the module docstring for the grammar)."""
    marks: list[Mark] = []
    for raw in _WIKI_ESCAPE.sub(r"\1", text).splitlines():
        line = _LIST_MARK.sub("", raw.strip()).strip()
        verb = _VERB.match(line)
        subject = _unquoted(verb.group(2) if verb else line)
        select = verb is None or verb.group(1).casefold() == "select"
        if not subject:
            continue
        if _TOKENS_ONLY.match(subject):
            tokens = (t.strip(_QUOTES + ".:!?") for t in _TOKEN.findall(subject))
            marks += [Mark(token, select, where) for token in tokens]
        elif verb is not None or len(subject) <= MAX_NAME_LINE:
            marks.append(Mark(subject.rstrip(".,;"), select, where, explicit=verb is not None))
    return marks


def choose(selectable: Selectable, marks: Iterable[Mark]) -> Choice:
    """Apply the marks in order (labels, then notes oldest first): the last word on a service
    wins. What names no service is kept until a later mark with the same text takes it back."""
    chosen: dict[str, bool] = {}
    unmatched: dict[str, Unmatched] = {}
    for mark in marks:
        found = selectable.resolve(mark.written)
        if len(found) == 1:
            chosen[found[0]] = mark.select
            continue
        text = normalized(mark.written)
        if not mark.select and text in unmatched:
            del unmatched[text]  # a typo taken back
        elif text not in unmatched and (entry := _unmatched(selectable, mark, found)):
            unmatched[text] = entry
    return Choice(tuple(k for k, on in chosen.items() if on), tuple(unmatched.values()))


def read_choice(
    selectable: Selectable, cycle: TicketState | None, tasks: Sequence[TicketState]
) -> Choice:
    """The selection the cycle ticket's labels and the notes on it and on the selection
    sub-tasks make (people's notes only, oldest first)."""
    marks = label_marks(cycle.labels, f"label on {cycle.ref.key}") if cycle else []
    notes = [
        (comment, state.ref.key)
        for state in (*([cycle] if cycle else []), *tasks)
        for comment in state.comments
        if not _ours(comment)
    ]
    for comment, ticket in sorted(notes, key=lambda note: note[0].created):
        marks += note_marks(comment.text, f"note by {comment.author or 'someone'} on {ticket}")
    return choose(selectable, marks)


def configured_choice(selectable: Selectable, keys: Sequence[str]) -> Choice:
    """`review.selection` (service keys, or tokens and names too): the services it names, and
    what names none (a gap of the cycle; never a comment, the ticket is not where it is fixed)."""
    marks = [Mark(key, True, "review.selection in the settings") for key in keys]
    return choose(selectable, marks)


def _unmatched(selectable: Selectable, mark: Mark, found: tuple[str, ...]) -> Unmatched | None:
    if found:  # a name several services share
        nearest = tuple(selectable.describe(key) for key in found)
        problem = f"names {len(found)} services; use a token"
        return Unmatched(written=mark.written, where=mark.where, nearest=nearest, problem=problem)
    close = selectable.nearest(
        mark.written, cutoff=NEAREST_CUTOFF if mark.explicit else PROSE_CUTOFF
    )
    if not mark.explicit and not close:
        return None  # conversation, not an entry
    nearest = tuple(selectable.describe(key) for key in close)
    return Unmatched(written=mark.written, where=mark.where, nearest=nearest)


def _is_token(text: str) -> bool:
    return text.casefold().startswith(SELECT_LABEL_PREFIX)


def _unquoted(text: str) -> str:
    return text.strip().strip(_QUOTES).strip()


def _ours(comment: TicketComment) -> bool:
    """slm-sync's own notes (by the integration account, or starting with our notice)."""
    return comment.ours or comment.text.lstrip().startswith(NOTICE)


# ---- telling the typos once ----------------------------------------------------------------
def notice(entries: Sequence[Unmatched]) -> Document:
    """The comment on the cycle ticket naming entries that match no service."""
    return Document(
        blocks=(
            doc.paragraph(f"{NOTICE}; they are ignored until corrected:"),
            doc.BulletList(items=tuple((doc.text(entry.line()),) for entry in entries)),
            doc.paragraph(
                "Correct the label or write a corrected note (the cycle ticket lists every "
                "service's token). This is said once per entry."
            ),
        )
    )


def tell_unmatched(
    target: TargetConnector,
    store: StateStore,
    cycle_key: str,
    ref: TicketRef,
    entries: Sequence[Unmatched],
    seen: Sequence[TicketComment] = (),
) -> list[Unmatched]:
    """Comment once on the cycle ticket about the entries not told yet; the ones told now.

    Told: a done step `unmatched:<hash>` of the cycle ticket, or a note of ours among `seen`
    (the cycle ticket's comments read this cycle) quoting the entry. A failed comment stays
    pending and is tried again next cycle; it never fails the run."""
    steps = store.steps(target.system)
    quoted = {
        normalized(q)
        for comment in seen
        if _ours(comment)
        for q in _QUOTED.findall(_WIKI_ESCAPE.sub(r"\1", comment.text))
    }
    fresh = [
        entry
        for entry in entries
        if normalized(entry.written) not in quoted
        and getattr(steps.get((cycle_key, _step(entry))), "state", None) != "done"
    ]
    if not fresh:
        return []
    note = notice(fresh)
    wanted = hashlib.sha256(repr([e.line() for e in fresh]).encode()).hexdigest()
    for entry in fresh:
        store.record_step(target.system, cycle_key, _step(entry), state="pending", digest=wanted)
    try:
        target.comment(ref, note)
    except FatalError:
        raise
    except ConnectorError as error:
        log.warning("selection.notice_failed", ticket=ref.key, error=str(error))
        return []
    for entry in fresh:
        store.record_step(target.system, cycle_key, _step(entry), state="done", digest=wanted)
    log.info("selection.unmatched_told", ticket=ref.key, entries=[e.written for e in fresh])
    return fresh


def _step(entry: Unmatched) -> str:
    return STEP + hashlib.sha256(normalized(entry.written).encode()).hexdigest()[:12]
