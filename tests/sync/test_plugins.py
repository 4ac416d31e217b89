"""Connector plugins: found through the `slm_sync.connectors` entry point group, and synced from."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import set_testing
from connectors.registry import available
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine
from sync.state import open_store

PLUGIN_CODE = '''
"""A tiny ITSM export as an slm-sync source: services, people, one SLA, SLA records in JSON."""
from __future__ import annotations

import json
from pathlib import Path

from connectors import Page, Stream
from connectors.registry import ConnectorPlugin

class JsonExportSource:
    system = "tinyitsm"

    def __init__(self, settings):
        self.data = json.loads(Path(settings.plugins["tinyitsm"]["path"]).read_text())

    def read(self, stream, *, since=None, until=None):
        rows = self.data.get(stream.value, [])
        if rows:
            yield Page(stream=stream, records=rows, cursor=None)

plugin = ConnectorPlugin(
    name="tinyitsm",
    source=JsonExportSource,
    mapping_file=Path(__file__).with_name("mapping.yaml"),
)
'''

PLUGIN_MAPPING = """
version: 1
system: tinyitsm
entities:
  person:
    id: id
    table: users
    fields:
      email: mail
      name: {source: display, required: true}
  service:
    id: id
    table: services
    fields:
      key: id
      name: {source: title, required: true}
      owner: owner
  agreement:
    id: id
    table: slas
    fields:
      key: id
      name: title
      kind: {transform: constant, args: {value: SLA}}
      metric: {transform: constant, args: {value: resolution}}
      target_percent: {source: target, transform: percent, required: true}
      service_key: service
  sla_record:
    id: id
    table: outcomes
    fields:
      key: id
      agreement_key: sla
      task_ref: ticket
      service_key: service
      start: {source: opened, transform: datetime}
      stop: {source: closed, transform: datetime}
      breached: {source: late, transform: boolean}
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Install `tinyitsm` the way pip would: a package plus a dist-info with its entry point."""
    site = tmp_path / "site-packages"
    package = site / "tinyitsm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_CODE))
    (package / "mapping.yaml").write_text(PLUGIN_MAPPING)
    info = site / "tinyitsm-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyitsm\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[slm_sync.connectors]\ntinyitsm = tinyitsm:plugin\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("tinyitsm", None)


def _export(path: Path) -> Path:
    outcomes = [
        {
            "id": f"o{i}",
            "sla": "sla-1",
            "ticket": f"T-{i}",
            "service": "svc-mail",
            "opened": f"2026-{m:02d}-10 08:00:00",
            "closed": f"2026-{m:02d}-10 10:00:00",
            "late": "true" if i % 5 == 0 else "false",
        }
        for i, m in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 3)
    ]
    export = {
        "person": [{"id": "u1", "mail": "ops.lead@example.com", "display": "Ops Lead"}],
        "service": [{"id": "svc-mail", "title": "Mail relay", "owner": "u1"}],
        "agreement": [
            {
                "id": "sla-1",
                "title": "Mail incidents resolved",
                "target": "90",
                "service": "svc-mail",
            }
        ],
        "sla_record": outcomes,
    }
    path.write_text(json.dumps(export))
    return path


def test_builtin_connectors_register_through_entry_points() -> None:
    """servicenow and jira are found the same way a third-party plugin is."""
    found = available()
    assert {"servicenow", "jira"} <= set(found)
    assert found["jira"].target is not None and found["servicenow"].source is not None


def test_an_installed_plugin_is_a_source_the_daemon_syncs_from(
    installed_plugin: Path, tmp_path: Path
) -> None:
    """With sync.source = tinyitsm, its service gets a review ticket in Jira, owner as R."""
    assert "tinyitsm" in available()
    set_testing(True)
    with Sandbox(seed=3, services=3, sla_records=200) as site:
        settings = demo_settings(site, tmp_path / "data")
        settings.sync.source = "tinyitsm"
        settings.plugins = {"tinyitsm": {"path": str(_export(tmp_path / "export.json"))}}
        settings.review.selection = ["svc-mail"]
        store = open_store(settings.sync.resolved_state_url())
        result = Engine.from_settings(settings, store).run_once()
        store.close()
    set_testing(False)
    assert result.summary.as_counts()["failed"] == 0
    review = next(t for t in result.tickets if t.kind.value == "review")
    assert review.title.endswith("Mail relay")
    pack = result.build.packs["svc-mail"]
    assert pack.attainments[0].measured == 30
    assert pack.attainments[0].breached == 6
