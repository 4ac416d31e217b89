"""Fixtures for the Jira stand-in: running sites (Cloud, Data Center) and spec validation.

`cloud_http` is a `requests.Session` bound to the Cloud site that validates every response it
receives against Atlassian's official Cloud spec (openapi-core), and `/rest/servicedeskapi`
responses against the JSM spec, so contract checking is automatic, not written per test.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.exceptions import OpenAPIError

from sandbox.estate import build_estate
from sandbox.estate.model import Estate
from sandbox.http import Harness, Knobs, ServerThread
from sandbox.jira import JiraApp

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
JIRA_SPEC = REFERENCE / "jira" / "jira-platform-v3.swagger-v3.v3.2025-12.json"
JSM_SPEC = REFERENCE / "jsm" / "jsm-servicedeskapi.openapi.2022-01.json"
SPEC_HOST = "https://your-domain.atlassian.net"
NOW = datetime(2025, 6, 2, tzinfo=UTC)

# Jira writes "2020-03-26T22:20:59.000+0000" (no colon in the offset); RFC 3339 wants one.
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
# Known errata of the official spec, where real Jira (and its own examples) disagree with the
# schema: GET remotelink returns an array (the spec says one RemoteIssueLink).
SPEC_ERRATA = {("GET", "/rest/api/3/issue/{issueIdOrKey}/remotelink")}
_REMOTELINK = re.compile(r"^/rest/api/3/issue/[^/]+/remotelink$")


def _lenient_date_time(value: Any) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME.match(value))


def _spec(path: Path) -> OpenAPI:
    if not path.is_file():
        pytest.skip(f"{path} is not present beside the project")
    config = Config(
        spec_validator_cls=None, extra_format_validators={"date-time": _lenient_date_time}
    )
    return OpenAPI.from_dict(json.loads(path.read_text()), config=config)


@pytest.fixture(scope="session")
def jira_spec() -> OpenAPI:
    return _spec(JIRA_SPEC)


@pytest.fixture(scope="session")
def jsm_spec() -> OpenAPI:
    return _spec(JSM_SPEC)


@dataclass
class JiraSite:
    """A running Jira stand-in: the app (for in-process inspection), its knobs and URL."""

    app: JiraApp
    knobs: Knobs
    harness: Harness
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        self.harness.reset(state=True)


@pytest.fixture(scope="session")
def estate() -> Estate:
    return build_estate(seed=7, services=12, sla_records=5000, now=NOW)


def _start(estate: Estate, flavor: str, **knobs: Any) -> JiraSite:
    knob_values = Knobs()
    if knobs:
        knob_values.update(knobs)
    app = JiraApp(estate, flavor, knob_values)  # type: ignore[arg-type]
    harness = Harness(app, knob_values)
    return JiraSite(app, knob_values, harness, ServerThread(harness).start())


@pytest.fixture(scope="session")
def cloud(estate: Estate) -> Iterator[JiraSite]:
    """The shared Cloud site; no index lag, so searches see writes at once."""
    site = _start(estate, "cloud", index_lag_ms=0)
    yield site
    site.server.stop()


@pytest.fixture(scope="session")
def datacenter(estate: Estate) -> Iterator[JiraSite]:
    site = _start(estate, "datacenter", index_lag_ms=0)
    yield site
    site.server.stop()


@pytest.fixture
def jira_factory(estate: Estate) -> Iterator[Callable[..., JiraSite]]:
    """Start a site with custom knobs (``index_lag_ms``, ``rate_limit``, ...); stopped after."""
    started: list[JiraSite] = []

    def start(flavor: str = "cloud", **knobs: Any) -> JiraSite:
        site = _start(estate, flavor, **knobs)
        started.append(site)
        return site

    yield start
    for site in started:
        site.server.stop()


class BaseUrlSession(requests.Session):
    """A session whose relative URLs ("/rest/api/3/...") go to one site."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.auth = ("slm-sync@example.com", "api-token")

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:  # type: ignore[override]
        target = url if str(url).startswith("http") else self.base_url + str(url)
        return super().request(method, target, *args, **kwargs)


class ValidatingSession(BaseUrlSession):
    """Every response is checked against the official spec; a mismatch fails the test."""

    def __init__(self, base_url: str, jira: OpenAPI, jsm: OpenAPI) -> None:
        super().__init__(base_url)
        self.jira, self.jsm = jira, jsm
        self.validated = itertools.count()

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        self.check(response)
        return response

    def check(self, response: requests.Response) -> None:
        path = urlsplit(response.url).path
        if path.startswith("/rest/api/3/"):
            spec = self.jira
        elif path.startswith("/rest/servicedeskapi/"):
            spec = self.jsm
        else:
            return
        if response.status_code in (201, 204) and not response.content:
            return  # erratum: the spec declares JSON for these, real Jira sends no body (HTTP 204)
        if response.request.method == "GET" and _REMOTELINK.match(path):
            assert isinstance(response.json(), list)  # erratum: see SPEC_ERRATA
            return
        request = _as_spec_host(response.request)
        try:
            spec.validate_response(
                RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response)
            )
        except OpenAPIError as error:
            cause = error.__cause__
            details = getattr(cause, "schema_errors", None) or cause or error
            pytest.fail(
                f"{response.request.method} {path} -> {response.status_code} breaks the spec: "
                f"{str(details)[:1500]}\nbody: {response.text[:500]}"
            )
        next(self.validated)


def _as_spec_host(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
    """The same request addressed to the spec's server, so openapi-core finds the operation."""
    copy = prepared.copy()
    parts = urlsplit(str(prepared.url))
    host = urlsplit(SPEC_HOST)
    copy.url = urlunsplit((host.scheme, host.netloc, parts.path, parts.query, parts.fragment))
    return copy


@pytest.fixture
def cloud_http(cloud: JiraSite, jira_spec: OpenAPI, jsm_spec: OpenAPI) -> ValidatingSession:
    return ValidatingSession(cloud.url, jira_spec, jsm_spec)


@pytest.fixture
def dc_http(datacenter: JiraSite) -> BaseUrlSession:
    return BaseUrlSession(datacenter.url)


@pytest.fixture
def label(request: pytest.FixtureRequest) -> str:
    """A label unique to the test, so tests sharing a site do not see each other's issues."""
    return "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


@pytest.fixture
def adf_doc() -> Callable[[str], dict[str, Any]]:
    """Build a one-paragraph ADF document."""
    return adf


@pytest.fixture
def new_task(
    cloud_http: ValidatingSession, adf_doc: Callable[[str], dict[str, Any]]
) -> Callable[..., dict[str, Any]]:
    """Create an SLM task on the Cloud site; returns the created-issue JSON (id, key, self)."""

    def create(summary: str = "Review", **fields: Any) -> dict[str, Any]:
        body = {
            "fields": {
                "project": {"key": "SLM"},
                "issuetype": {"name": "Task"},
                "summary": summary,
                "description": adf_doc(summary),
                **fields,
            }
        }
        response = cloud_http.post("/rest/api/3/issue", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return create
