"""`slm-sync demo` walks the cycle's opening through the tickets, as the LT would."""

from __future__ import annotations

from pathlib import Path

from sync.demo import lt_tokens, run_demo


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
    assert sum(1 for f in result.files if f.suffix == ".html") == 3
