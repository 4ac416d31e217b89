"""People in the packs link to their record in the source: a service owner read from ServiceNow
links to `<instance>/sys_user.do?sys_id=<id>` (the connector's record links, `public_url` behind
a proxy), with their name as the link text; the HTML report shows that link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from review import document as doc
from review.report import render_html
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store

pytestmark = pytest.mark.usefixtures("no_retry_waits")
HEX = re.compile(r"\b[0-9a-f]{32}\b")


def _mentions(document: doc.Document) -> list[doc.Mention]:
    found: list[doc.Mention] = []
    for block in document.blocks:
        lines = block.items if isinstance(block, doc.BulletList) else ()
        if isinstance(block, doc.Paragraph):
            lines = (block.content,)
        found += [n for line in lines for n in line if isinstance(n, doc.Mention)]
    return found


@pytest.mark.parametrize("public_url", [None, "https://itsm.example.com"])
def test_service_owners_link_to_their_sys_user_record(
    tmp_path: Path, public_url: str | None
) -> None:
    with Sandbox(seed=3, services=3, sla_records=200, index_lag_ms=0) as site:
        settings = demo_settings(site, tmp_path / "data")
        settings.servicenow.clock_skew_seconds = 0
        settings.servicenow.public_url = public_url
        base = public_url or site.servicenow_url
        store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            opened = Engine.from_settings(settings, store).run_once(dry_run=True)
            settings.review.selection = [c.service_key for c in opened.build.candidates]
            build = Engine.from_settings(settings, store).run_once(dry_run=True).build
        finally:
            store.close()
        users = {u["sys_id"]: u for u in site.servicenow.store.rows("sys_user")}
    owned = [s for s in build.services if s.owner is not None and s.owner.source is not None]
    assert owned, "the seeded estate names service owners"
    for service in owned:
        assert service.owner is not None and service.owner.source is not None
        owner_id = service.owner.source.id
        assert owner_id in users
        wanted = f"{base}/sys_user.do?sys_id={owner_id}"
        pack = build.packs[service.key]
        links = {m.name: m.url for m in _mentions(pack.body)}
        assert links[service.owner.name] == wanted
        page = render_html(pack.body, title=service.name)
        assert f'href="{wanted}"' in page
        assert HEX.search(re.sub(r'(href|src)="[^"]*"', "", page)) is None, "no sys_id as text"
