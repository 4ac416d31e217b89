"""Links to records people open: built by the connectors from the instance or site URL, or
from the `public_url` people reach the tools at (a proxy)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from config import JiraSettings, ServiceNowSettings
from connectors import record_links
from connectors.jira import links as jira_links
from connectors.servicenow import links as sn_links
from review import SourceRef

SYS_ID = "d7296d02c0a801670085e737da016e70"


def test_servicenow_links_use_the_public_url_else_the_api_url() -> None:
    """`servicenow.public_url` wins for links; without it the instance's URL is used."""
    api = ServiceNowSettings(instance="acme")
    proxied = ServiceNowSettings(url="https://10.0.0.5:8443", public_url="https://sn.acme.example/")
    assert api.record_base_url() == "https://acme.service-now.com"
    assert proxied.record_base_url() == "https://sn.acme.example"
    problem = SourceRef(system="servicenow", table="problem", id=SYS_ID)
    assert sn_links.source_url(proxied.record_base_url(), problem) == (
        f"https://sn.acme.example/problem.do?sys_id={SYS_ID}"
    )
    assert sn_links.source_url(None, problem) is None
    other = SourceRef(system="jira", table="sla_cycle", id="SD-1:customfield_1:0")
    assert sn_links.source_url(proxied.record_base_url(), other) is None


def test_servicenow_links_quote_what_a_url_cannot_hold() -> None:
    """Table names and sys_ids go into the link as they are; anything else (an import's odd
    key, a space) is percent-encoded, never left to break the link."""
    base = "https://sn.acme.example/"
    assert sn_links.record_url(base, "u_sla_2", SYS_ID) == (
        f"https://sn.acme.example/u_sla_2.do?sys_id={SYS_ID}"
    )
    assert sn_links.record_url(base, "my table", "a/b&c=d") == (
        "https://sn.acme.example/my%20table.do?sys_id=a%2Fb%26c%3Dd"
    )
    assert sn_links.record_url(base, "task_sla", "é") == (
        "https://sn.acme.example/task_sla.do?sys_id=%C3%A9"
    )
    assert sn_links.record_url(base, "", SYS_ID) is None


@given(table=st.text(min_size=1), sys_id=st.text(min_size=1))
def test_servicenow_links_are_those_quote_makes(table: str, sys_id: str) -> None:
    """Skipping quote() for plain names changes no link: the same text as quoting all."""
    try:
        expected = f"https://sn/{quote(table, safe='_')}.do?sys_id={quote(sys_id, safe='')}"
    except UnicodeEncodeError:  # a lone surrogate: no URL either way
        with pytest.raises(UnicodeEncodeError):
            sn_links.record_url("https://sn", table, sys_id)
        return
    assert sn_links.record_url("https://sn", table, sys_id) == expected


@pytest.mark.parametrize("char", ["/", "~", ".", "-", "_", "\u0131", "K", "\u212a", " ", "%"])
def test_servicenow_links_treat_each_character_as_quote_does(char: str) -> None:
    assert sn_links.record_url("https://sn", char, char) == (
        f"https://sn/{quote(char, safe='_')}.do?sys_id={quote(char, safe='')}"
    )


def test_jira_links_browse_the_request_of_a_record() -> None:
    """An SLA cycle or satisfaction answer links to its request's page; services and people
    (no page of their own) link nowhere."""
    site = jira_links.site_url(
        JiraSettings(url="https://jira.internal:8080/jira", public_url="https://jira.acme.example"),
        "https://jira.internal:8080/jira",
    )
    assert site == "https://jira.acme.example"
    assert jira_links.site_url(JiraSettings(url="https://x.example"), "https://x.example/") == (
        "https://x.example"
    )
    cycle = SourceRef(system="jira", table="sla_cycle", id="SD-12:customfield_10030:0")
    assert jira_links.source_url(site, cycle) == "https://jira.acme.example/browse/SD-12"
    service = SourceRef(system="jira", table="service", id="7")
    assert jira_links.source_url(site, service) is None


@pytest.mark.parametrize("section", [ServiceNowSettings, JiraSettings])
def test_a_public_url_must_be_a_web_url(section: type[ServiceNowSettings | JiraSettings]) -> None:
    """A public_url is checked like the API URL: http(s), a host, no credentials inside."""
    with pytest.raises(ValidationError, match="public_url"):
        section(public_url="sn.acme.example")
    with pytest.raises(ValidationError, match="user name or password"):
        section(public_url="https://user:secret@sn.acme.example")


def test_sources_without_record_urls_give_no_links() -> None:
    """A source plugin without `record_url` is fine: its records are shown without links."""

    class Linking:
        def record_url(self, ref: SourceRef) -> str | None:
            return f"https://x.example/{ref.id}"

    assert record_links(object()) is None
    found = record_links(Linking())
    assert found is not None and found(SourceRef(system="x", table="t", id="1")) == (
        "https://x.example/1"
    )
