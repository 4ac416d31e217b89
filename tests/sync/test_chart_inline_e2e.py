"""The attainment chart in the review ticket: inline on Jira Data Center (wiki `!file!` names
the attachment the sync uploads), a line saying it is attached on Jira Cloud and ServiceNow."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")
AUTH = ("slm-demo", "demo-api-token")


def _sync_reviews(site: Sandbox, tmp_path: Path) -> RunResult:
    (tmp_path / "data").mkdir()
    settings = demo_settings(site, tmp_path / "data")
    settings.servicenow.clock_skew_seconds = 0
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        opened = Engine.from_settings(settings, store).run_once()
        settings.review.selection = [c.service_key for c in opened.build.candidates[:2]]
        return Engine.from_settings(settings, store).run_once()
    finally:
        store.close()


@pytest.mark.parametrize("flavor", ["datacenter", "cloud"])
def test_the_chart_is_shown_where_the_target_can(flavor: str, tmp_path: Path) -> None:
    with Sandbox(seed=3, services=3, sla_records=300, index_lag_ms=0, jira_flavor=flavor) as site:
        result = _sync_reviews(site, tmp_path)
        reviews = [o.ticket for o in result.summary.outcomes if o.kind == "review" and o.ticket]
        assert len(reviews) == 2
        version = "2" if flavor == "datacenter" else "3"
        for key in reviews:
            fields = requests.get(
                f"{site.jira_url}/rest/api/{version}/issue/{key}",
                params={"fields": "description,attachment"}, auth=AUTH, timeout=10,
            ).json()["fields"]  # fmt: skip
            names = [a["filename"] for a in fields["attachment"]]
            assert len(names) == 1 and names[0].endswith(".png")
            text = str(fields["description"])
            if flavor == "datacenter":
                assert f"!{names[0]}!" in text, "the attached chart, inline"
            else:
                assert "Chart of attainment per month: the image attached to this ticket." in text
                assert names[0] not in text, "no file name holding the service key as text"
