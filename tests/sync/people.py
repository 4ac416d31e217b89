"""People acting in the target's tickets, through the stand-ins' REST APIs, as themselves.

The sync reads back what people do in Jira / ServiceNow tickets (the tickets are the record of
the review process). End-to-end tests play those people with this class: each call is one or
two REST requests a person's browser would make, authenticated as that person, so comments and
journal entries carry *their* name, not the integration account's.

    from .people import People  # in a test module under tests/sync/

    people = People(site, "jira")                # or "servicenow"
    people.comment(ref, "Decision: raise the target to 99.5 %", as_person="ann@example.com")
    people.set_due(ref, date(2026, 3, 1))
    people.close(ref)
    assert people.is_done(ref)
    improvement = people.link(ref, "Shorten the restore runbook")  # a key / task number

`ref` is a `connectors.TicketRef`: key = Jira issue key / ServiceNow number, id = Jira issue id
/ ServiceNow sys_id. `as_person` is the e-mail of a person of the sandbox's estate; None is a
default person (an active Jira user with a visible e-mail, never the integration account).

Authentication: Jira, Basic `<e-mail>:` `sandbox.jira.PERSON_PASSWORD` (the stand-in then acts
as that user); ServiceNow, Basic `<e-mail>` with any password (the stand-in acts as the sys_user
with that e-mail: `sys_created_by` is their `user_name`). ServiceNow tasks have no labels:
`add_label`, `remove_label` and `labels` raise there.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import requests

from connectors import TicketRef
from connectors.jira.adf import plain_text
from sandbox import Sandbox
from sandbox.estate.model import Person
from sandbox.jira.adf import text_to_adf
from sandbox.jira.directory import PERSON_PASSWORD

SN_PASSWORD = "sandbox-person"  # the ServiceNow stand-in takes any password but the rejected one
SN_TABLE = "vtb_task"
SN_CLOSED = ("3", "4", "7")
SN_CLOSED_COMPLETE, SN_WORK_IN_PROGRESS = "3", "2"
TIMEOUT = 10


class People:
    """What people do in the target's UI, through its REST API, each as themselves."""

    def __init__(self, site: Sandbox, target: Literal["jira", "servicenow"]) -> None:
        if target not in ("jira", "servicenow"):
            raise ValueError(f"target {target!r}: expected 'jira' or 'servicenow'")
        self.site, self.target = site, target
        self.default = _default_person(site)

    # ---- status ----------------------------------------------------------------------------
    def close(self, ref: TicketRef) -> None:
        """Move the ticket to Done (Jira) / Closed Complete (ServiceNow)."""
        if self.target == "jira":
            self._transition(ref, "done")
        else:
            self._patch(ref, {"state": SN_CLOSED_COMPLETE})

    def reopen(self, ref: TicketRef) -> None:
        """Move the ticket back to To Do (Jira) / Work in Progress (ServiceNow)."""
        if self.target == "jira":
            self._transition(ref, "new")
        else:
            self._patch(ref, {"state": SN_WORK_IN_PROGRESS})

    def description(self, ref: TicketRef) -> str:
        """The ticket's description as a person reads it (Jira ADF / wiki as plain text)."""
        if self.target == "jira":
            return plain_text(self._issue(ref, "description")["description"])
        return str(self._row(ref, "description")["description"])

    def is_done(self, ref: TicketRef) -> bool:
        if self.target == "jira":
            fields = self._issue(ref, "status")
            return bool(fields["status"]["statusCategory"]["key"] == "done")
        row = self._row(ref, "state,active")
        return bool(row["state"] in SN_CLOSED or row["active"] == "false")

    # ---- what people write -----------------------------------------------------------------
    def comment(self, ref: TicketRef, text: str, *, as_person: str | None = None) -> None:
        """A comment (Jira; ADF on Cloud, wiki on Data Center) / a work note (ServiceNow)."""
        person = self._person(as_person)
        if self.target == "jira":
            body: Any = text_to_adf(text) if self._cloud else text
            self._jira("POST", f"issue/{ref.key}/comment", person, json={"body": body})
        else:
            self._patch(ref, {"work_notes": text}, person)

    def set_due(self, ref: TicketRef, due: date) -> None:
        if self.target == "jira":
            self._jira("PUT", f"issue/{ref.key}", json={"fields": {"duedate": due.isoformat()}})
        else:
            self._patch(ref, {"due_date": f"{due.isoformat()} 12:00:00"})

    def assign(self, ref: TicketRef, email: str) -> None:
        """Assign the ticket to the estate person with this e-mail."""
        person = self._person(email)
        if self.target == "jira":
            user = {"accountId": person.jira_account_id}
            if not self._cloud:
                user = {"name": person.jira_name}
            self._jira("PUT", f"issue/{ref.key}/assignee", json=user)
        else:
            self._patch(ref, {"assigned_to": person.sys_id})

    # ---- labels (Jira only) ----------------------------------------------------------------
    def add_label(self, ref: TicketRef, label: str) -> None:
        self._labels_only()
        self._jira("PUT", f"issue/{ref.key}", json={"update": {"labels": [{"add": label}]}})

    def remove_label(self, ref: TicketRef, label: str) -> None:
        self._labels_only()
        self._jira("PUT", f"issue/{ref.key}", json={"update": {"labels": [{"remove": label}]}})

    def labels(self, ref: TicketRef) -> tuple[str, ...]:
        self._labels_only()
        return tuple(self._issue(ref, "labels")["labels"])

    # ---- improvement tickets ---------------------------------------------------------------
    def link(self, ref: TicketRef, title: str) -> str:
        """Create an improvement ticket and link it to `ref`; its key (Jira) / number (SN).

        Jira: a Task in the ticket's project, linked "Relates"; ServiceNow: a vtb_task whose
        `parent` is the ticket (what `ServiceNowTarget.linked` reads)."""
        if self.target == "jira":
            return self._jira_link(ref, title)
        body = {"short_description": title, "parent": ref.id}
        row = self._sn("POST", f"table/{SN_TABLE}", self.default, json=body)["result"]
        return str(row["number"])

    def _jira_link(self, ref: TicketRef, title: str) -> str:
        project = ref.key.rsplit("-", 1)[0]
        fields = {"project": {"key": project}, "issuetype": {"name": "Task"}, "summary": title}
        created = self._jira("POST", "issue", json={"fields": fields})
        link = {
            "type": {"name": "Relates"},
            "inwardIssue": {"key": ref.key},
            "outwardIssue": {"key": created["key"]},
        }
        self._jira("POST", "issueLink", json=link)
        return str(created["key"])

    def unlink(self, ref: TicketRef, key: str) -> None:
        """Remove the Jira link between `ref` and issue `key` (the issues stay)."""
        fields = self._jira("GET", f"issue/{ref.key}", params={"fields": "issuelinks"})["fields"]
        sides = ("inwardIssue", "outwardIssue")
        link = next(
            link
            for link in fields["issuelinks"]
            if key in ((link.get(side) or {}).get("key") for side in sides)
        )
        self._jira("DELETE", f"issueLink/{link['id']}")

    def delete(self, ref: TicketRef) -> None:
        """Delete the Jira issue (its links go with it)."""
        self._labels_only()
        self._jira("DELETE", f"issue/{ref.key}")

    # ---- plumbing --------------------------------------------------------------------------
    @property
    def _cloud(self) -> bool:
        return self.site.jira_flavor == "cloud"

    def _person(self, email: str | None) -> Person:
        if email is None:
            return self.default
        wanted = email.strip().lower()
        for person in self.site.estate.people:
            if person.email.lower() == wanted:
                return person
        raise LookupError(f"no person with e-mail {email} in the sandbox's estate")

    def _labels_only(self) -> None:
        if self.target != "jira":
            raise NotImplementedError("ServiceNow tasks have no labels")

    def _transition(self, ref: TicketRef, category: str) -> None:
        listed = self._jira("GET", f"issue/{ref.key}/transitions")["transitions"]
        wanted = [t for t in listed if t["to"]["statusCategory"]["key"] == category]
        if not wanted:
            raise AssertionError(f"{ref.key}: no transition to a '{category}' status")
        body = {"transition": {"id": wanted[0]["id"]}}
        self._jira("POST", f"issue/{ref.key}/transitions", json=body)

    def _issue(self, ref: TicketRef, fields: str) -> dict[str, Any]:
        issue = self._jira("GET", f"issue/{ref.key}", params={"fields": fields})
        return dict(issue["fields"])

    def _jira(self, method: str, path: str, person: Person | None = None, **kwargs: Any) -> Any:
        version = "3" if self._cloud else "2"
        actor = person or self.default
        response = requests.request(
            method,
            f"{self.site.jira_url}/rest/api/{version}/{path}",
            auth=(actor.email, PERSON_PASSWORD),
            timeout=TIMEOUT,
            **kwargs,
        )
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    def _row(self, ref: TicketRef, fields: str) -> dict[str, Any]:
        params = {"sysparm_fields": fields, "sysparm_exclude_reference_link": "true"}
        found = self._sn("GET", f"table/{SN_TABLE}/{ref.id}", self.default, params=params)
        return dict(found["result"])

    def _patch(self, ref: TicketRef, body: dict[str, str], person: Person | None = None) -> None:
        self._sn("PATCH", f"table/{SN_TABLE}/{ref.id}", person or self.default, json=body)

    def _sn(self, method: str, path: str, person: Person, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.site.servicenow_url}/api/now/{path}",
            auth=(person.email, SN_PASSWORD),
            timeout=TIMEOUT,
            **kwargs,
        )
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


def _default_person(site: Sandbox) -> Person:
    """An active estate person Jira knows, with a visible e-mail, who may be assigned."""
    for person in site.estate.people:
        usable = person.in_jira and person.active and person.jira_assignable
        if usable and not person.jira_email_hidden:
            return person
    raise LookupError("the sandbox's estate has no active Jira user with a visible e-mail")
