"""A `TicketSpec` as Jira issue fields: type, key label, people, due date and rendered body.

The body is the spec's document plus a "People" section: consulted and informed people as
mentions (a mention notifies without an extra call), and the accountable person when no
accountable field is configured or they have no Jira account. A responsible person Jira does not
know, or refuses as an assignee (no *Assignable user* permission), is named in the body and the
ticket goes to the fallback assignee.

Jira refuses text fields and comments longer than 32,767 characters. A body that would be
longer keeps as many of its leading blocks as fit and ends with a note saying it was cut (for
ADF the compact JSON is measured: at least as long as what Jira counts).

On Cloud the review pack's chart is shown inline from the attachment the ticket carries
(`shown`: ticket key -> attachment id, told by the sync's attach step); Data Center's wiki
markup names the attachment by file name and needs no id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config import JiraSettings
from connectors.base import TicketRef
from connectors.errors import FatalError
from connectors.jira.adf import to_adf
from connectors.jira.client import JiraApi, Permission
from connectors.jira.links import attachment_content_url
from connectors.jira.people import PeopleDirectory
from connectors.jira.wiki import to_wiki
from review import Document, Person, TicketSpec
from review.document import Block, Heading, Image, Inline, Mention, Paragraph, Text

SYNC_LABEL = "slm-sync"
EDITABLE = ("summary", "description", "assignee", "duedate")  # and the accountable field
TEXT_LIMIT = 32767  # characters Jira takes in a text field or comment
CUT_NOTE = (
    "[slm-sync: the rest of this text was cut, as Jira takes at most 32,767 characters here; "
    "{shown} of {total} sections are shown. Run `slm-sync report` for the full review pack.]"
)


@dataclass(frozen=True)
class IssueTypes:
    """The configured issue types as this project's createmeta names them."""

    task_id: str
    subtask_id: str

    @classmethod
    def discover(cls, api: JiraApi, settings: JiraSettings) -> IssueTypes:
        """Check `issue_type` / `subtask_type` against createmeta; accept a localized sub-task."""
        page = api.call(
            "GET",
            f"issue/createmeta/{settings.project}/issuetypes",
            what=f"create metadata of project {settings.project}",
            permission=Permission.CREATE,
            params={"maxResults": 200},
        )
        types = list((page or {}).get("issueTypes") or (page or {}).get("values") or [])
        task = _named(types, settings.issue_type, subtask=False)
        subtask = _named(types, settings.subtask_type, subtask=True)
        subtasks = [t for t in types if t.get("subtask")]
        if subtask is None and len(subtasks) == 1:
            subtask = subtasks[0]  # the site localizes the name ("Unteraufgabe")
        names = ", ".join(str(t.get("name")) for t in types)
        if task is None:
            raise FatalError(
                f"issue type {settings.issue_type!r} cannot be created in {settings.project}",
                system="jira",
                hint=f"set jira.issue_type to one of: {names}",
            )
        if subtask is None:
            raise FatalError(
                f"sub-task type {settings.subtask_type!r} not found in {settings.project}",
                system="jira",
                hint=f"set jira.subtask_type to one of: {names}",
            )
        return cls(str(task["id"]), str(subtask["id"]))


def _named(types: list[dict[str, Any]], name: str, *, subtask: bool) -> dict[str, Any] | None:
    for issue_type in types:
        if bool(issue_type.get("subtask")) == subtask and (
            str(issue_type.get("name", "")).lower() == name.lower() or issue_type.get("id") == name
        ):
            return issue_type
    return None


class TicketFields:
    """Builds create / edit payloads for one site."""

    def __init__(
        self,
        api: JiraApi,
        settings: JiraSettings,
        people: PeopleDirectory,
        types: IssueTypes,
        shown: Mapping[str, str] | None = None,
        site: str = "",
    ) -> None:
        self.api = api
        self.settings = settings
        self.people = people
        self.types = types
        self.cloud = api.deployment.value == "cloud"
        self.shown = shown if shown is not None else {}
        self.site = site or api.base_url

    def create(self, spec: TicketSpec, parent: TicketRef | None) -> dict[str, Any]:
        """The `fields` of a create request for `spec` (under `parent` if a sub-task)."""
        fields = {name: value for name, value in self.editable(spec).items() if value is not None}
        fields["project"] = {"key": self.settings.project}
        type_id = self.types.subtask_id if parent else self.types.task_id
        fields["issuetype"] = {"id": type_id}
        fields["labels"] = labels(spec)
        if parent is not None:
            fields["parent"] = {"key": parent.key}
        return {"fields": fields}

    @property
    def editable_names(self) -> tuple[str, ...]:
        """The fields `editable` sets: what an update compares with the ticket."""
        accountable = self.settings.accountable_field
        return (*EDITABLE, accountable) if accountable else EDITABLE

    def editable(self, spec: TicketSpec) -> dict[str, Any]:
        """Fields an update may change: summary, body, assignee, accountable, due date."""
        fields: dict[str, Any] = {
            "summary": summary(spec.title),
            "description": self.render(self.body(spec), spec.key),
            "assignee": self.user(self.assignee(spec)),
            "duedate": spec.due.isoformat() if spec.due else None,
        }
        if self.settings.accountable_field:
            fields[self.settings.accountable_field] = self.user(
                self.people.identity(spec.accountable)
            )
        return fields

    def user(self, identity: str | None) -> dict[str, str] | None:
        return self.people.user_ref(identity) if identity else None

    def assignee(self, spec: TicketSpec) -> str | None:
        """R of RACI, or the fallback assignee when Jira does not know them or refuses them
        as an assignee."""
        found = self.people.assignable(spec.assignee)
        if found is None and self.settings.fallback_assignee:
            return self.people.by_email(self.settings.fallback_assignee)
        return found

    def render(self, document: Document, key: str = "") -> Any:
        """The document as this site's rich text, cut to fit Jira's text limit; `key` names
        the ticket whose attachments its images show."""
        rendered = self._render(document, key)
        if _length(rendered) <= TEXT_LIMIT:
            return rendered
        blocks = document.blocks
        fits = _largest(
            len(blocks), lambda n: _length(self._render(_cut(blocks, n), key)) <= TEXT_LIMIT
        )
        return self._render(_cut(blocks, fits), key)

    def _render(self, document: Document, key: str) -> Any:
        if self.cloud:
            return to_adf(document, self._resolve, lambda image: self._image_url(key, image))
        return to_wiki(document, self._resolve)

    def _image_url(self, key: str, image: Image) -> str | None:
        """The content URL of the attachment ticket `key` shows `image` from (None: none yet)."""
        attachment_id = self.shown.get(key) if key else None
        return attachment_content_url(self.site, attachment_id) if attachment_id else None

    def _resolve(self, mention: Mention) -> str | None:
        return self.people.by_email(mention.email) if mention.email else None

    def body(self, spec: TicketSpec) -> Document:
        """The spec's document plus the people the ticket concerns."""
        lines: list[Paragraph] = []
        if spec.assignee is not None and self.people.identity(spec.assignee) is None:
            lines.append(_people_line("Responsible (not found in Jira)", (spec.assignee,)))
        elif spec.assignee is not None and self.people.assignable(spec.assignee) is None:
            lines.append(_people_line("Responsible (cannot be assigned in Jira)", (spec.assignee,)))
        accountable_in_field = self.settings.accountable_field and self.people.identity(
            spec.accountable
        )
        if spec.accountable is not None and not accountable_in_field:
            lines.append(_people_line("Accountable", (spec.accountable,)))
        if spec.consulted:
            lines.append(_people_line("Consulted", spec.consulted))
        if spec.informed:
            lines.append(_people_line("Informed", spec.informed))
        if not lines:
            return spec.body
        return Document(
            blocks=(*spec.body.blocks, Heading(level=3, content=(Text(text="People"),)), *lines)
        )


def _people_line(role: str, people: Sequence[Person]) -> Paragraph:
    content: list[Inline] = [Text(text=f"{role}: ", strong=True)]
    for index, person in enumerate(people):
        if index:
            content.append(Text(text=", "))
        url = person.source.url if person.source is not None else None
        content.append(Mention(name=person.name, email=person.email, url=url))
    return Paragraph(content=tuple(content))


def _length(rendered: Any) -> int:
    if isinstance(rendered, str):
        return len(rendered)
    return len(json.dumps(rendered, separators=(",", ":"), ensure_ascii=False))


def _cut(blocks: Sequence[Block], shown: int) -> Document:
    note = Paragraph(content=(Text(text=CUT_NOTE.format(shown=shown, total=len(blocks))),))
    return Document(blocks=(*blocks[:shown], note))


def _largest(total: int, fits: Callable[[int], bool]) -> int:
    """The largest n in 0..total-1 with fits(n) (0 if none): a binary search."""
    low, high = 0, total - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def summary(title: str) -> str:
    """A summary Jira accepts: one line, at most 255 characters."""
    line = " ".join(title.split())
    return line if len(line) <= 255 else line[:254] + "…"


def labels(spec: TicketSpec) -> list[str]:
    """Idempotency key, the sync label, then the spec's labels (spaces become dashes)."""
    extra = ["-".join(label.split()) for label in spec.labels if label.strip()]
    return list(dict.fromkeys([spec.key, SYNC_LABEL, *extra]))
