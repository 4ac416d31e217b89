"""`slm-sync demo` walks the cycle's opening through the tickets, as the LT would."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from review import Service, build_pack, cycle_for, slug
from sync.cli import main
from sync.demo import PACK_FILES, lt_tokens, run_demo, write_packs


def test_the_demo_selects_through_the_cycle_ticket_not_the_settings(tmp_path: Path) -> None:
    """The LT's tokens come from the cycle ticket's candidates table; adding them as labels and
    closing the selection sub-task opens exactly those reviews; the last sync changes nothing."""
    result = run_demo(tmp_path / "out")
    assert result.opening is not None
    assert [s.cycle_state for s in result.steps] == [
        "selecting", "selecting", "selecting", "reviewing", "reviewing",
    ]  # fmt: skip
    assert result.tokens == tuple(lt_tokens(result.opening)[:3])
    candidates = [c.service_key for c in result.opening.build.candidates[:3]]
    assert sorted(result.first.phase.selection) == sorted(candidates)
    reviews = [o for o in result.first.summary.outcomes if o.kind == "review"]
    assert len(reviews) == 3 and all(o.action.value == "create" for o in reviews)
    assert result.second.summary.as_counts()["created"] == 0
    assert result.second.summary.as_counts()["updated"] == 0
    assert sum(1 for f in result.files if f.name == "review.html") == 3
    assert any(f.name == "portfolio.html" for f in result.files)


def test_the_demo_writes_each_pack_in_a_folder_named_for_its_service(tmp_path: Path) -> None:
    """`demo-output/<service slug>/review.html`, `review.md`, `chart.png`: people find a
    service's pack by its name, not by a sys_id; the page shows the chart beside it."""
    out = tmp_path / "out"
    result = run_demo(out)
    names = {s.key: s.name for s in result.second.build.services}
    selected = result.second.phase.selection
    assert sorted(result.folders) == sorted(selected)
    for key in selected:
        folder = result.folders[key]
        assert folder.parent == out and folder.name == slug(names[key]), names[key]
        assert key not in folder.name, "named for the service, not its sys_id"
        assert sorted(p.name for p in folder.iterdir()) == sorted(PACK_FILES)
        page = (folder / "review.html").read_text(encoding="utf-8")
        assert '<img src="chart.png"' in page and names[key].split()[0] in page
        assert "](<chart.png>)" in (folder / "review.md").read_text(encoding="utf-8")
    folders = sorted(f.name for f in result.folders.values())
    assert sorted(p.name for p in out.iterdir()) == sorted([*folders, "portfolio.html"])
    packs = json.loads(json.dumps(result.as_json()))["packs"]
    assert {(p["service"], p["folder"]) for p in packs} == {
        (names[k], str(result.folders[k])) for k in selected
    }


def _result(services: list[Service]) -> Any:
    """A run's result as `write_packs` reads it: the cycle, the packs and their charts."""
    cycle = cycle_for(date(2026, 3, 1))
    packs = {s.key: build_pack(s, cycle.period, [], {}) for s in services}
    charts = {s.key: b"png of " + s.key.encode() for s in services}
    return SimpleNamespace(build=SimpleNamespace(cycle=cycle, packs=packs, charts=charts))


def test_pack_folders_fall_back_to_a_stable_name_when_the_slug_is_empty_or_taken(
    tmp_path: Path,
) -> None:
    """Two services whose names slug alike each get `-<4 hex>`; a name with no ASCII letters
    gets `service-<8 hex>`; the same services give the same folders whatever their order."""
    services = [
        Service(key="sys-1", name="Email"),
        Service(key="sys-2", name="EMAIL!"),
        Service(key="sys-3", name="Email"),
        Service(key="sys-4", name="電子メール"),
        Service(key="sys-5", name="Payroll"),
    ]
    folders = write_packs(_result(services), tmp_path / "a")
    names = {k: f.name for k, f in folders.items()}
    assert names["sys-5"] == "payroll"
    assert names["sys-4"].startswith("service-") and len(names["sys-4"]) == len("service-") + 8
    emails = [names["sys-1"], names["sys-2"], names["sys-3"]]
    assert all(n.startswith("email-") and len(n) == len("email-") + 4 for n in emails)
    assert len(set(names.values())) == len(services), "every pack has its own folder"
    for key, folder in folders.items():
        assert (folder / "chart.png").read_bytes() == b"png of " + key.encode()
        assert (folder / "review.md").exists() and (folder / "review.html").exists()
    again = write_packs(_result(list(reversed(services))), tmp_path / "b")
    assert {k: f.name for k, f in again.items()} == names


def test_an_output_that_is_a_file_is_refused_before_the_walk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--output` naming a file exits 2 at once, saying why, with no traceback."""
    taken = tmp_path / "demo-output"
    taken.write_text("not a folder", encoding="utf-8")
    assert main(["demo", "--output", str(taken)]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "cannot use it as a folder" in err and "Traceback" not in err


def test_the_demo_tells_where_the_portfolio_page_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed summary names each pack's folder and the portfolio page beside them."""
    out = tmp_path / "out"
    assert main(["demo", "--output", str(out)]) == 0
    printed = "".join(capsys.readouterr().out.split())  # the console wraps long paths
    assert f"portfoliopage:{out / 'portfolio.html'}" in printed
    assert (out / "portfolio.html").is_file()
