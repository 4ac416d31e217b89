"""Fixtures for the Jira connector: sandboxes in both flavours, settings, review ticket specs,
and (for `responses` unit tests) request validation against the official Cloud spec."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from pydantic import SecretStr

from config import JiraSettings, ReviewSettings, Settings
from connectors import set_testing
from review import Person, TicketKind, TicketSpec
from review.document import Document, Mention, Status, StatusColor, Table, heading, paragraph, text
from sandbox import Sandbox

FIXED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
SUBTASKS = ("schedule_review", "prepare_artifacts", "participate")


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


def _start(flavor: str, **kwargs: Any) -> Sandbox:
    options: dict[str, Any] = {"services": 12, "sla_records": 1500, "now": FIXED_NOW}
    options.update(kwargs)
    return Sandbox(seed=7, jira_flavor=flavor, **options).start()


@pytest.fixture(scope="module", params=["cloud", "datacenter"])
def site(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox per flavour (module-scoped); index lag off unless a test turns it on."""
    running = _start(request.param, index_lag_ms=0)
    yield running
    running.stop()


@pytest.fixture
def fresh_site(site: Sandbox) -> Sandbox:
    """The module's site with the review project emptied and request counters reset."""
    requests.post(f"{site.jira_url}/__sandbox/reset?state=true", timeout=5)
    return site


@pytest.fixture
def jira_settings() -> Callable[..., Settings]:
    """Settings pointing at a sandbox, with Jira keys overridable."""

    def build(sandbox: Sandbox, people: dict[str, Any] | None = None, **jira: Any) -> Settings:
        values: dict[str, Any] = {
            "url": sandbox.jira_url,
            "accountable_field": "customfield_10034",
            "index_lag_seconds": 0.0,
            "requests_per_second": 1000.0,
        }
        if sandbox.jira_flavor == "cloud":
            values.update(email="slm-sync@example.com", api_token=SecretStr("token"))
        else:
            values.update(personal_access_token=SecretStr("pat"))
        values.update(jira)
        return Settings(jira=JiraSettings(**values), review=ReviewSettings(people=people or {}))

    return build


def jira_people(sandbox: Sandbox) -> list[Person]:
    """Estate people who are active in Jira with a visible email and may be assigned issues."""
    return [
        Person(email=p.email, name=p.name)
        for p in sandbox.estate.people
        if p.in_jira and p.active and not p.jira_email_hidden and p.jira_assignable
    ]


@pytest.fixture
def people_of() -> Callable[[Sandbox], list[Person]]:
    return jira_people


def review_body(service: str, owner: Person) -> Document:
    return Document(
        blocks=(
            heading(2, f"Review of {service}"),
            paragraph("Service Level Manager: ", Mention(name=owner.name, email=owner.email)),
            Table(
                header=("Agreement", "Target", "Status"),
                rows=(
                    (
                        (text(f"{service} | resolution"),),
                        (text("95 %"),),
                        (Status(text="met", color=StatusColor.GREEN),),
                    ),
                ),
            ),
        )
    )


@pytest.fixture
def review_plan() -> Callable[..., list[TicketSpec]]:
    """A cycle ticket, `n` review tickets and three activity sub-tasks under each review."""

    def build(
        sandbox: Sandbox, n: int, cycle: str = "2026", title_suffix: str = ""
    ) -> list[TicketSpec]:
        people = jira_people(sandbox)
        cycle_key = f"slm:{cycle}:cycle"
        specs = [
            TicketSpec(
                key=cycle_key,
                kind=TicketKind.CYCLE,
                title=f"SLM review cycle {cycle}",
                body=Document(blocks=(paragraph("Select services for review."),)),
                assignee=people[0],
            )
        ]
        for index in range(n):
            owner = people[index % len(people)]
            service = f"svc{index:04d}"
            review_key = f"slm:{cycle}:{service}:review"
            specs.append(
                TicketSpec(
                    key=review_key,
                    kind=TicketKind.REVIEW,
                    title=f"Service review: {service}{title_suffix}",
                    body=review_body(service, owner),
                    assignee=owner,
                    accountable=people[(index + 1) % len(people)],
                    consulted=(people[(index + 2) % len(people)],),
                    informed=(people[(index + 3) % len(people)],),
                    due=date(2026, 3, 1),
                    labels=("slm-review",),
                )
            )
            for activity in SUBTASKS:
                specs.append(
                    TicketSpec(
                        key=f"slm:{cycle}:{service}:{activity}",
                        parent_key=review_key,
                        kind=TicketKind.ACTIVITY,
                        title=f"{activity.replace('_', ' ').title()}: {service}",
                        body=Document(blocks=(paragraph(f"Activity {activity}."),)),
                        assignee=owner,
                        due=date(2026, 2, 15),
                    )
                )
        return specs

    return build


@pytest.fixture
def created() -> Callable[[Sandbox], list[dict[str, Any]]]:
    """Tickets the sandbox says clients created (GET /__sandbox/created)."""

    def read(sandbox: Sandbox) -> list[dict[str, Any]]:
        body = requests.get(f"{sandbox.jira_url}/__sandbox/created", timeout=5).json()
        return list(body["tickets"])

    return read


@pytest.fixture
def calls() -> Callable[[Sandbox], dict[str, int]]:
    """Request counts by "METHOD route" since the last reset."""

    def read(sandbox: Sandbox) -> dict[str, int]:
        body = requests.get(f"{sandbox.jira_url}/__sandbox/requests", timeout=5).json()
        return dict(body["by_route"])

    return read


def label_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]


def load_jsonl(name: str) -> list[dict[str, Any]]:
    path = REFERENCE / "derived" / name
    if not path.is_file():
        pytest.skip(f"{path} is not present beside the project")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def sandbox_lagging(site: Sandbox) -> Iterator[Sandbox]:
    """The module's site, emptied, with a 2 s search index lag (its clock replaceable)."""
    requests.post(f"{site.jira_url}/__sandbox/reset?state=true", timeout=5)
    requests.post(f"{site.jira_url}/__sandbox/knobs", json={"index_lag_ms": 2000}, timeout=5)
    original = site.jira.site.clock
    yield site
    site.jira.site.clock = original
    requests.post(f"{site.jira_url}/__sandbox/knobs", json={"index_lag_ms": 0}, timeout=5)


# ---- unit tests: `responses` with official examples, requests validated against the spec ----
SPEC_HOST = "https://your-domain.atlassian.net"
JIRA_SPEC = REFERENCE / "jira" / "jira-platform-v3.swagger-v3.v3.2025-12.json"
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")


def _lenient_date_time(value: Any) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.match(value))


@pytest.fixture(scope="session")
def jira_spec() -> Any:
    """Atlassian's official Jira Cloud spec (openapi-core), lenient about Jira's timestamps."""
    from openapi_core import Config, OpenAPI

    if not JIRA_SPEC.is_file():
        pytest.skip(f"{JIRA_SPEC} is not present beside the project")
    config = Config(
        spec_validator_cls=None, extra_format_validators={"date-time": _lenient_date_time}
    )
    return OpenAPI.from_dict(json.loads(JIRA_SPEC.read_text()), config=config)


@pytest.fixture
def example() -> Callable[[str, str, str], Any]:
    """An official example response body: example(method, path template, status)."""
    rows = load_jsonl("jira-platform-v3-2025-12.response-examples.jsonl")

    def find(method: str, path: str, status: str) -> Any:
        for row in rows:
            if (row["method"], row["path"], row["status"]) == (method, path, status):
                return row["example"]
        raise LookupError(f"no official example for {method} {path} {status}")

    return find


@pytest.fixture
def mocked(jira_spec: Any) -> Iterator[Any]:
    """A `responses` mock; at teardown every request sent is validated against the Cloud spec
    (Data Center's /rest/api/2 paths are checked as their /rest/api/3 twins)."""
    import responses
    from openapi_core.contrib.requests import RequestsOpenAPIRequest

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        for call in mock.calls:
            prepared = call.request.copy()
            parts = urlsplit(str(prepared.url).replace("/rest/api/2/", "/rest/api/3/"))
            if not parts.path.startswith("/rest/api/3/") or parts.path.endswith("/attachments"):
                continue  # multipart uploads: the spec declares no body schema to check
            prepared.url = SPEC_HOST + parts.path + (f"?{parts.query}" if parts.query else "")
            jira_spec.validate_request(RequestsOpenAPIRequest(prepared))


@pytest.fixture
def unit_settings() -> Callable[..., Settings]:
    """Settings for a Cloud (or DC) site at the spec's host, pacing off."""

    def build(deployment: str = "cloud", **jira: Any) -> Settings:
        values: dict[str, Any] = {
            "url": SPEC_HOST,
            "deployment": deployment,
            "email": "slm-sync@example.com",
            "api_token": SecretStr("token-value"),
            "requests_per_second": 10_000.0,
            "index_lag_seconds": 0.0,
            "jsm_project": "ITSD",
        }
        values.update(jira)
        return Settings(jira=JiraSettings(**values))

    return build
