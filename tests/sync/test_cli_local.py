"""Commands that write no ticket: `report`, `mapping preview`, and the terminal progress bars."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rich.console import Console

from sandbox import Sandbox
from sync.cli import main
from sync.progress import TerminalProgress


@pytest.fixture(scope="module")
def site() -> Iterator[Sandbox]:
    running = Sandbox(seed=4, services=5, sla_records=800).start()
    yield running
    running.stop()


@pytest.fixture
def config(site: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SLM_SYNC_SERVICENOW__PASSWORD", "demo-password")
    monkeypatch.setenv("SLM_SYNC_JIRA__API_TOKEN", "demo-token-1")
    path = tmp_path / "slm-sync.yaml"
    path.write_text(
        json.dumps(
            {
                "servicenow": {"url": site.servicenow_url, "username": "demo",
                               "requests_per_second": 100},
                "jira": {"url": site.jira_url, "email": "demo@example.com"},
                "sync": {"data_dir": str(tmp_path / "data")},
                "logging": {"level": "WARNING", "format": "json"},
            }
        )
    )  # fmt: skip
    return str(path)


def _a_service(site: Sandbox) -> tuple[str, str]:
    rows = requests.get(
        f"{site.servicenow_url}/api/now/table/cmdb_ci_service",
        params={"sysparm_fields": "sys_id,name", "sysparm_query": "sys_class_name=cmdb_ci_service"},
        auth=("u", "p"),
        timeout=10,
    ).json()["result"]
    return rows[0]["sys_id"], rows[0]["name"]


def test_report_writes_a_readable_pack_and_its_chart(
    site: Sandbox, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --format html` writes the pack with every section and the PNG it shows."""
    key, name = _a_service(site)
    out = tmp_path / "report"
    assert main(["report", "--service", key, "--format", "html", "--output", str(out),
                 "--config", config]) == 0  # fmt: skip
    written = [Path(line) for line in capsys.readouterr().out.split()]
    page = next(p for p in written if p.suffix == ".html")
    chart = next(p for p in written if p.suffix == ".png")
    html = page.read_text()
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert chart.name in html
    for section in ("Targets", "Breaches", "Gaps"):
        assert section in html
    assert name.split()[0] in html
    assert not list(site.jira.created()["tickets"])


def test_report_for_an_unknown_service_exits_2_with_examples(
    site: Sandbox, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong key names the mistake and lists real keys to use instead."""
    assert main(["report", "--service", "nope", "--output", str(tmp_path), "--config", config]) == 2
    err = capsys.readouterr().err
    assert "no service with key 'nope'" in err
    assert _a_service(site)[0][:8] in err


def test_report_portfolio_writes_every_service_and_no_ticket(
    site: Sandbox, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --portfolio` runs a dry cycle and writes portfolio.html with a row per service;
    nothing is created in the target."""
    out = tmp_path / "portfolio"
    assert main(["report", "--portfolio", "--output", str(out), "--config", config]) == 0
    assert capsys.readouterr().out.split() == [str(out / "portfolio.html")]
    page = (out / "portfolio.html").read_text(encoding="utf-8")
    assert page.count('<tr class="service ') == len(site.estate.services)
    assert "<script" not in page
    assert not list(site.jira.created()["tickets"])


def test_report_needs_a_service_or_the_portfolio(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither or both of --service and --portfolio is a usage error (exit 2)."""
    assert main(["report", "--config", config]) == 2
    assert main(["report", "--portfolio", "--service", "x", "--config", config]) == 2
    assert "either --service KEY or --portfolio" in capsys.readouterr().err


def test_mapping_preview_shows_raw_and_mapped_side_by_side(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mapping preview --json` maps a few live task_sla rows with per-field detail."""
    assert main(["mapping", "preview", "--source", "servicenow", "--entity", "sla_record",
                 "--limit", "3", "--json", "--config", config]) == 0  # fmt: skip
    preview = json.loads(capsys.readouterr().out)
    assert preview["entity"] == "sla_record"
    assert len(preview["records"]) == 3
    assert all(r["mapped"] and "has_breached" in r["raw"] for r in preview["records"])


def test_progress_bars_show_reads_and_writes_on_a_terminal() -> None:
    """On a terminal, reads count records per stream and writes show done of planned."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with TerminalProgress(console) as bars:
        bars.page("sla_record", 1000)
        bars.page("sla_record", 500)
        bars.written(7, 17)
        bars.progress.refresh()
    text = screen.getvalue()
    assert "reading sla_record" in text
    assert "1500" in text
    assert "7/17" in text
