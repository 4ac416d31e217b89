"""The attainment heat map: what a service owner sees in it, and that drawing it stays quiet.

The charts are read back as PNG (Pillow, a matplotlib dependency) and sampled at the cells' places;
the texts are read from the figure the chart is drawn from (its text artists and grid stamps).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

from review import attainment_chart
from review import chart as chart_module
from review.chart import (
    DPI,
    FILL,
    GAP,
    HATCH,
    HEADER_BAND,
    LABEL_WIDTH,
    MARGIN,
    MAX_ROWS,
    NO_DATA_FILL,
    PERIOD_WIDTH,
    ROW_HEIGHT,
    TITLE_BAND,
    WIDTH_INCHES,
    chart_size,
)
from review.model import Attainment, AttainmentStatus, MonthlyAttainment, ReviewPeriod

# 10 Mar 2025 to 18 Feb 2026 09:30 (exclusive): March 2025 and February 2026 are partial.
PERIOD = ReviewPeriod(
    start=datetime(2025, 3, 10, tzinfo=UTC), end=datetime(2026, 2, 18, 9, 30, tzinfo=UTC)
)
MONTHS = 12  # Mar 2025 .. Feb 2026
CJK_EMOJI_NAME = "決済サービス 💳 Zahlungsverkehr ^ $EU"
Month = tuple[str, int, int]  # month, records, breached


def _attainment(target: float, months: Sequence[Month], status: AttainmentStatus) -> Attainment:
    measured = sum(n for _, n, _ in months)
    breached = sum(b for _, _, b in months)
    return Attainment(
        agreement_key=f"sla-{target}-{len(months)}",
        period=PERIOD,
        measured=measured,
        breached=breached,
        attainment=(measured - breached) / measured if measured else None,
        target_percent=target,
        status=status,
        monthly=tuple(
            MonthlyAttainment(month=m, measured=n, breached=b, attainment=(n - b) / n)
            for m, n, b in months
        ),
    )


# Row 0 Availability: Apr 2025 missed (88 %), May at risk (90 %), Jun missing, Aug met.
# Row 1 Response P1: Apr 2025 low-volume (3 records), May met with 40 records.
# Row 2 Resolution P3: no records at all.
SERIES: list[tuple[str, Attainment]] = [
    ("Availability", _attainment(
        90.0, [("2025-04", 4300, 500), ("2025-05", 4400, 440), ("2025-07", 4400, 0),
               ("2025-08", 4400, 0)], AttainmentStatus.AT_RISK)),
    ("Response P1", _attainment(
        95.0, [("2025-04", 3, 1), ("2025-05", 40, 1), ("2026-02", 2, 0)], AttainmentStatus.MET)),
    ("Resolution P3", _attainment(80.0, [], AttainmentStatus.NO_DATA)),
]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees replaced characters reported afresh (the chart logs each once per process)."""
    monkeypatch.setattr(chart_module, "_reported", set())


@pytest.fixture
def without_fallback_fonts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine with only matplotlib's bundled DejaVu Sans (no CJK or emoji font installed)."""
    monkeypatch.setattr(chart_module, "FALLBACK_FONTS", ())
    chart_module._fonts.cache_clear()
    yield
    chart_module._fonts.cache_clear()


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def _cell_corner(row: int, column: int) -> tuple[int, int]:
    """A pixel inside the cell's top-left corner, clear of its text and white border."""
    left = MARGIN + LABEL_WIDTH
    width = (WIDTH_INCHES - MARGIN - PERIOD_WIDTH - GAP - left) / MONTHS
    x = left + column * width + 0.04
    y = TITLE_BAND + HEADER_BAND + row * ROW_HEIGHT + 0.04
    return round(x * DPI), round(y * DPI)


def _rgb(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def _close(pixel: Any, color: str) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(pixel, _rgb(color), strict=True))


def _texts(title: str, series: Sequence[tuple[str, Attainment]]) -> list[str]:
    """Every text drawn in the chart: matplotlib's texts, then the grid's (drawn as stamps)."""
    grid = chart_module._grid(series, None)
    figure = chart_module._draw(grid, title, chart_module._fonts(), 2.0, set())
    texts = [t.get_text() for t in figure.axes[0].texts]
    stamps = [
        s for a in figure.axes[0].artists if isinstance(a, chart_module._Stamps) for s in a.texts
    ]
    legend = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    return texts + stamps + legend


def test_a_pack_with_gaps_draws_quietly_at_its_size_and_identically_twice(
    capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    """Missing, partial and low-volume months and a CJK + emoji name: nothing on stderr or
    stdout, no warning, a PNG of the announced size, and the same bytes for the same data."""
    with capture_logs() as logs:
        first = attainment_chart(f"{CJK_EMOJI_NAME}: monthly attainment", SERIES)
        second = attainment_chart(f"{CJK_EMOJI_NAME}: monthly attainment", SERIES)
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")
    assert not recwarn.list
    assert [e for e in logs if e["log_level"] == "warning" and e["matplotlib"]] == []
    assert first == second
    assert b"Software" not in first and b"matplotlib" not in first
    size = _png(first).size
    assert size == chart_size(len(SERIES)) and size[0] == 1200


def test_met_at_risk_missed_and_empty_cells_differ_in_colour_and_in_greyscale() -> None:
    """A missed month is dark red, an at-risk one amber, a met one pale green, a month without
    records blank; their lightness differs too, so a greyscale print keeps them apart."""
    image = _png(attainment_chart("Payments: monthly attainment", SERIES))
    missed, at_risk = image.getpixel(_cell_corner(0, 1)), image.getpixel(_cell_corner(0, 2))
    met, empty = image.getpixel(_cell_corner(0, 5)), image.getpixel(_cell_corner(0, 3))
    assert _close(missed, FILL[AttainmentStatus.MISSED])
    assert _close(at_risk, FILL[AttainmentStatus.AT_RISK])
    assert _close(met, FILL[AttainmentStatus.MET])
    assert _close(empty, NO_DATA_FILL)
    grey = image.convert("L")
    lightness = [grey.getpixel(_cell_corner(0, c)) for c in (1, 2, 5)]
    assert lightness[0] + 60 < lightness[1] < lightness[2]  # missed < at risk < met


def test_a_low_volume_month_is_hatched_and_a_full_one_is_plain() -> None:
    """Three records are too few to judge: that cell carries hatching, a 40-record one not."""
    image = _png(attainment_chart("Payments", SERIES))

    def colours(row: int, column: int) -> set[Any]:
        """The colours along the cell's top edge, above its text."""
        x, y = _cell_corner(row, column)
        return {image.getpixel((x + dx, y + dy)) for dx in range(50) for dy in range(4)}

    april, may = colours(1, 1), colours(1, 2)  # 3 records (missed), 40 records (met)
    assert any(_close(pixel, HATCH[AttainmentStatus.MISSED]) for pixel in april)
    assert any(_close(pixel, FILL[AttainmentStatus.MISSED]) for pixel in april)
    assert len(may) == 1 and _close(may.pop(), FILL[AttainmentStatus.MET])


def test_the_chart_says_what_each_cell_means() -> None:
    """Row labels carry the target, cells the rounded-down percentage and record count, empty
    stretches say "no data", partial months carry a dagger explained under the grid."""
    texts = _texts("Payments: monthly attainment", SERIES)
    assert "target ≥ 90 %" in texts and "target ≥ 95 %" in texts
    assert "88 %" in texts and "90 %" in texts and "100 %" in texts
    assert "66 %" in texts and "n=3" in texts  # 2 of 3 met: rounded down, never up to target
    assert "no records in the period" in texts  # Resolution P3
    assert "no data" in texts
    assert "Mar†\n2025" in texts and "Feb†\n2026" in texts and "Apr\n2025" in texts
    assert any(
        "† partial month: the period runs 10 Mar 2025 \u2013 18 Feb 2026" in t for t in texts
    )
    assert any(t.startswith("at risk: under 2 points above target") for t in texts)
    assert any("hatched: under 5 records" in t for t in texts)


def test_cjk_and_emoji_names_render_with_the_installed_fonts() -> None:
    """With a CJK font installed (the container has one), the name is drawn as written."""
    fonts = chart_module._fonts()
    if not all(fonts.draws(c) for c in "決済サービス"):
        pytest.skip("no CJK font installed (Debian: fonts-wqy-microhei or fonts-noto-cjk)")
    texts = _texts(f"{CJK_EMOJI_NAME}: monthly attainment", SERIES)
    assert texts[0].startswith("決済サービス")
    assert "\\$EU" in texts[0]  # `$` shown literally, not as mathtext


@pytest.mark.usefixtures("without_fallback_fonts")
def test_without_cjk_or_emoji_fonts_letters_become_question_marks_and_one_line_is_logged(
    capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    """No boxes, no stderr: undrawable letters show as "?", emoji are left out, and one
    structured warning names the characters once, however often the chart is drawn."""
    with capture_logs() as logs:
        first = attainment_chart(f"{CJK_EMOJI_NAME}: monthly attainment", SERIES)
        again = attainment_chart(f"{CJK_EMOJI_NAME}: monthly attainment", SERIES)
    assert first == again
    assert capsys.readouterr().err == "" and not recwarn.list
    replaced = [e for e in logs if e["event"] == "chart.glyphs_replaced"]
    assert len(replaced) == 1
    assert "U+6C7A" in replaced[0]["characters"] and "U+1F4B3" in replaced[0]["characters"]
    assert _texts(f"{CJK_EMOJI_NAME}: x", SERIES)[0].startswith("?????? Zahlungsverkehr")


def test_a_warning_matplotlib_still_raises_is_logged_not_printed(
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the glyph check miss one, matplotlib's "Glyph missing" warning is caught and
    becomes part of the single structured log line."""
    monkeypatch.setattr(chart_module._Fonts, "draws", lambda self, char: True)
    with capture_logs() as logs:
        attainment_chart("Launch \U0001fae0 pad", SERIES)
    assert capsys.readouterr().err == "" and not recwarn.list
    (event,) = [e for e in logs if e["event"] == "chart.glyphs_replaced"]
    assert any("missing from font" in m for m in event["matplotlib"])


def test_a_huge_name_is_cut_with_an_ellipsis_to_the_width_of_the_chart() -> None:
    """A 1 MB service name and a long row label are cut to fit, ending in an ellipsis."""
    label = "Resolution P2 " + "東京データセンター" * 5
    texts = _texts("Payroll \x00 " + "W" * 1_000_000, [(label, SERIES[1][1])])
    assert texts[0].startswith("Payroll W") and texts[0].endswith("…") and len(texts[0]) < 70
    row = next(t for t in texts if t.startswith("Resolution P2"))
    assert row.endswith("…") and len(row) < 24


def test_no_targets_and_too_many_targets_still_read() -> None:
    """A service without targets says so; beyond MAX_ROWS the rest are counted, not squeezed."""
    assert _png(attainment_chart("Empty", [])).size == chart_size(0)
    assert "No targets with monthly data in the period." in _texts("Empty", [])
    many = SERIES * 5
    assert _png(attainment_chart("Many", many)).size == chart_size(MAX_ROWS)
    assert any(f"{len(many) - MAX_ROWS} more targets" in t for t in _texts("Many", many))


@pytest.mark.parametrize(
    ("value", "target", "shown"),
    [(0.9496, 95.0, "94 %"), (0.99949, 99.95, "99.94 %"), (1.0, 99.5, "100 %"), (0.0, 90, "0 %")],
)
def test_percentages_are_rounded_down_to_the_targets_precision(
    value: float, target: float, shown: str
) -> None:
    """A month just under target never reads as the target itself."""
    assert chart_module._percent(value, target) == shown


def test_drawing_does_not_leave_warning_filters_or_matplotlib_logging_changed() -> None:
    """The quiet capture is undone afterwards: other code's warnings and logs still surface."""
    import logging

    before = (list(warnings.filters), logging.getLogger("matplotlib").propagate)
    attainment_chart("Payments", SERIES)
    assert (list(warnings.filters), logging.getLogger("matplotlib").propagate) == before
    assert logging.getLogger("matplotlib").handlers == []
