"""The monthly attainment chart of a review pack, as PNG bytes: a heat map of targets by months.

Why a heat map and not lines: a service has 5 to 8 targets and most months hold a handful of
records, so lines swing between 0 and 100 %, bridge months without data and tangle. A grid shows
each month of each target on its own, against that target's own threshold, with the number of
records beside the percentage: a reader sees at once which target missed when, and how much
evidence the cell holds.

Reading the grid: one row per target (its name and threshold, "≥ 95 %"), one column per month of
the review period, and a last column for the whole period. A cell is coloured by the status the
month would have on its own (met / at risk / missed, three steps that differ in lightness, so
they read in greyscale and for colour-blind readers); it shows the percentage (rounded down, so a
missed month never reads as the target) and the number of records. A month without records is a
blank "no data" cell; a month with fewer than LOW_VOLUME records is hatched (too few to judge);
a month the period covers only in part carries a dagger, explained under the grid.

Rendering is reproducible and quiet: matplotlib's object API on the Agg canvas (no pyplot, no
global figure), fixed size and resolution, fonts registered by file (matplotlib's own font cache
may predate fonts installed later), and a palette PNG without metadata (Software tag): equal input
gives byte-identical output, so the sync layer re-attaches a chart only when its data changed.
Rendering is also cheap, since every cycle draws each selected service again: the cells are a few
collections, not one artist each, and the grid's texts are rendered once per process and pasted
(`_Stamps`); a low-volume cell's text sits on a plate of its fill instead of a stroked halo.
Characters no installed font can draw are replaced before drawing, and any warning matplotlib
would still print is captured and logged once through structlog instead of reaching stderr.
"""

from __future__ import annotations

import io
import logging
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from glob import glob
from math import ceil
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
import structlog
from matplotlib import font_manager, ft2font
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.text import Text
from PIL import Image

from review.attainment import status_of
from review.model import Attainment, AttainmentStatus, MonthlyAttainment, ReviewPeriod

log = structlog.get_logger("slm_sync.chart")

# Layout in inches; the figure is WIDTH_INCHES wide and grows with the number of rows.
WIDTH_INCHES, DPI = 8.0, 150
TITLE_BAND, HEADER_BAND, ROW_HEIGHT, FOOTER_BAND, EMPTY_BAND = 0.72, 0.42, 0.44, 0.66, 0.6
LABEL_WIDTH, PERIOD_WIDTH, GAP, MARGIN = 1.62, 0.72, 0.1, 0.12
MAX_ROWS, MAX_MONTHS = 12, 18  # beyond these the cells get too small to read
LOW_HATCH = "//"
PLATE_INSET = 0.05  # hatching shows this wide (inches) left and right of a low-volume cell's text
LOW_VOLUME = 5  # a month with fewer records than this is marked "too few to judge"
TITLE_LIMIT = 90  # characters kept of a title (hostile names are huge); wide glyphs count double
LABEL_LIMIT = 40  # display columns kept of a row label before it is measured and cut to fit

# Three steps that differ in lightness (met lightest, missed darkest): readable in greyscale.
FILL = {
    AttainmentStatus.MET: "#cfe8c9",
    AttainmentStatus.AT_RISK: "#f2b04f",
    AttainmentStatus.MISSED: "#a7222f",
}
# Hatching of low-volume cells: visible on each fill without hiding the text.
HATCH = {
    AttainmentStatus.MET: "#8dc283",
    AttainmentStatus.AT_RISK: "#fff3df",
    AttainmentStatus.MISSED: "#e8a0a7",
}
INK, MUTED, GRID, NO_DATA_FILL = "#1b1b1b", "#6b6b6b", "#ffffff", "#f4f4f4"
ON_DARK = {AttainmentStatus.MISSED}

# Any: matplotlib types rc keys as a Literal union; this dict holds only valid keys.
_STYLE: Any = {
    "font.size": 8,
    "path.simplify": False,
    "text.usetex": False,
    "hatch.linewidth": 0.7,
}

# Fonts tried after matplotlib's bundled DejaVu Sans, first found wins per glyph. Noto CJK is the
# most complete CJK face; WenQuanYi Micro Hei (Debian fonts-wqy-microhei, 5 MB) covers Chinese,
# Japanese kana and Hangul at a twentieth of its size; Symbola (fonts-symbola) draws emoji in
# monochrome. Colour emoji fonts (Noto Color Emoji) are bitmap fonts Agg cannot draw.
FALLBACK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
    "/usr/share/fonts/truetype/ancient-scripts/Symbola.ttf",
)
# Invisible parts of emoji sequences: joiners, variation selectors, skin tones, tag characters.
_INVISIBLE = {0x200D, 0x20E3, *range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400)}
_INVISIBLE |= set(range(0xE0020, 0xE0080))

_RENDER_LOCK = threading.Lock()  # rcParams, the warning filters and the font list are global
_reported: set[str] = set()  # characters already logged as replaced (log once per process)


@dataclass(frozen=True)
class _Fonts:
    """The font families the chart draws with, and which characters they cover together."""

    families: tuple[str, ...]
    covered: frozenset[int]

    def draws(self, char: str) -> bool:
        return ord(char) in self.covered


@dataclass(frozen=True)
class _Grid:
    """What the chart lays out: months (columns), targets (rows) and the partial-month notes."""

    months: tuple[str, ...]
    rows: tuple[tuple[str, Attainment], ...]
    hidden_rows: int
    hidden_months: int
    partial: frozenset[str]
    period: ReviewPeriod | None


def attainment_chart(
    title: str,
    series: Sequence[tuple[str, Attainment]],
    *,
    at_risk_margin_percent: float = 2.0,
    period: ReviewPeriod | None = None,
) -> bytes:
    """A PNG heat map: monthly attainment of each agreement against its own target.

    `series` pairs a short label ("Resolution P1") with the agreement's attainment, in the order
    the rows are drawn (at most MAX_ROWS; the rest are counted under the grid). A month is "at
    risk" when its attainment is at or above target but within `at_risk_margin_percent` points
    (the cycle's setting). `period` defaults to the attainments' own period.
    """
    grid = _grid(series, period)
    buffer = io.BytesIO()
    with _RENDER_LOCK:
        with _quiet() as replaced:
            fonts = _fonts()
            figure = _draw(grid, title, fonts, at_risk_margin_percent, replaced)
            _png(figure, buffer)
        _report(replaced, fonts)
    return buffer.getvalue()


def _png(figure: Figure, out: io.BytesIO) -> None:
    """The drawn figure as a palette PNG without metadata: the chart is flat colours and their
    antialiased edges, which 256 colours (max-coverage, no dithering) hold to within 3 levels of
    the RGB image, at a quarter of the bytes."""
    canvas = figure.canvas
    canvas.draw()
    pixels = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())  # type: ignore[attr-defined]
    palette = pixels.convert("RGB").quantize(
        256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE
    )
    palette.save(out, format="png")


def chart_size(rows: int) -> tuple[int, int]:
    """The PNG's (width, height) in pixels for a chart of `rows` targets (0: no targets)."""
    return (round(WIDTH_INCHES * DPI), round(_height(min(rows, MAX_ROWS)) * DPI))


def _height(rows: int) -> float:
    body = rows * ROW_HEIGHT if rows else EMPTY_BAND
    return TITLE_BAND + HEADER_BAND + body + FOOTER_BAND


# --- what to draw -------------------------------------------------------------------------------


def _grid(series: Sequence[tuple[str, Attainment]], period: ReviewPeriod | None) -> _Grid:
    period = period or (series[0][1].period if series else None)
    months = set(_period_months(period)) if period else set()
    months |= {m.month for _, a in series for m in a.monthly}
    shown = sorted(months)[-MAX_MONTHS:]  # the latest months; the rest count in the whole period
    partial = _partial_months(period) if period else frozenset()
    rows = tuple(series[:MAX_ROWS])
    hidden_rows, hidden_months = len(series) - len(rows), len(months) - len(shown)
    return _Grid(tuple(shown), rows, hidden_rows, hidden_months, partial, period)


def _period_months(period: ReviewPeriod) -> Iterator[str]:
    year, month = period.start.year, period.start.month
    last = _last_instant(period)
    while (year, month) <= (last.year, last.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _partial_months(period: ReviewPeriod) -> frozenset[str]:
    """The first and last month when the period covers only part of them (end is exclusive)."""
    partial = set()
    if (period.start.day, period.start.time()) != (1, datetime.min.time()):
        partial.add(f"{period.start:%Y-%m}")
    if (period.end.day, period.end.time()) != (1, datetime.min.time()):
        partial.add(f"{period.end:%Y-%m}")
    return frozenset(partial)


def _last_instant(period: ReviewPeriod) -> datetime:
    return max(period.start, period.end - timedelta(microseconds=1))


# --- drawing ------------------------------------------------------------------------------------


def _draw(grid: _Grid, title: str, fonts: _Fonts, margin: float, replaced: set[str]) -> Figure:
    """The figure, laid out in inches on one axes that covers it (y grows downwards)."""
    height = _height(len(grid.rows))
    style = {**_STYLE, "font.family": list(fonts.families)}
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
        canvas = FigureCanvasAgg(figure)
        axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
        axes.set_xlim(0, WIDTH_INCHES)
        axes.set_ylim(height, 0)
        axes.set_axis_off()
        text = _Writer(canvas, axes, fonts, replaced)
        axes.add_artist(text.stamps)
        _title(text, grid, title)
        if grid.rows and grid.months:
            _header(text, grid)
            for index, (label, attainment) in enumerate(grid.rows):
                _row(text, grid, index, label, attainment, margin)
        else:
            text(MARGIN, TITLE_BAND + 0.3, "No targets with monthly data in the period.", size=9)
        _footer(figure, text, grid, height, margin)
        text.boxes.place(axes)
    return figure


class _Boxes:
    """The cells' rectangles, drawn as a few collections (one artist each, not one per cell):
    the fills, then the hatching of low-volume cells, then the plates that keep their text clear."""

    def __init__(self) -> None:
        self.fills: list[tuple[Corners, str]] = []
        self.hatched: dict[str, list[Corners]] = {}
        self.plates: list[tuple[Corners, str]] = []

    def place(self, axes: Axes) -> None:
        layers = [
            _collection(self.fills, edgecolor=GRID, linewidth=1.5),
            *(
                PolyCollection(_corners(boxes), facecolor="none", edgecolor=color,
                               linewidth=0, hatch=LOW_HATCH)
                for color, boxes in self.hatched.items()
            ),
            _collection(self.plates, edgecolor="none", linewidth=0),
        ]  # fmt: skip
        for layer in layers:
            axes.add_collection(layer, autolim=False)


def _collection(boxes: list[tuple[Corners, str]], **style: Any) -> PolyCollection:
    return PolyCollection(_corners([b for b, _ in boxes]), facecolor=[c for _, c in boxes], **style)


def _corners(boxes: list[Corners]) -> Any:
    """The rectangles as one (N, 4, 2) array: matplotlib then makes their paths from one
    template (a list made and checked a path per cell: a fifth of drawing a chart)."""
    return np.asarray(boxes, dtype=float) if boxes else boxes


Corners = tuple[tuple[float, float], ...]  # a rectangle's four corners, in inches


def _rectangle(x: float, top: float, width: float, height: float) -> Corners:
    return ((x, top), (x + width, top), (x + width, top + height), (x, top + height))


class _Writer:
    """Places text in inches, with characters no font can draw replaced first."""

    def __init__(
        self, canvas: FigureCanvasAgg, axes: Axes, fonts: _Fonts, replaced: set[str]
    ) -> None:
        self.canvas, self.axes, self.fonts, self.replaced = canvas, axes, fonts, replaced
        self.boxes = _Boxes()
        self.stamps = _Stamps(fonts.families)

    def __call__(
        self, x: float, y: float, value: str, *, fit: float | None = None, **style: Any
    ) -> None:
        """Draw `value` at (x, y); with `fit`, cut it with an ellipsis to `fit` inches wide."""
        shown = _drawable(value, self.fonts, self.replaced)
        style = {"va": "center", "color": INK, **style}
        if style.pop("stamp", False):
            key: Style = tuple(sorted(style.items()))
            if fit is not None:
                shown = _fitted(shown, key, fit, self.fonts.families)
            self.stamps.texts.append(shown)
            self.stamps.places.append((x, y, shown, key))
            return
        artist = self.axes.text(x, y, shown, **style)
        if fit is not None:
            renderer = self.canvas.get_renderer()  # type: ignore[no-untyped-call]
            artist.set_text(_longest_fit(shown, lambda t: _text_width(artist, t, renderer) <= fit))


Style = tuple[tuple[str, Any], ...]  # a text's keyword arguments, sorted: hashable


class _Stamps(Artist):
    """The grid's texts (cells, month heads, thresholds), drawn as images rendered once.

    A grid repeats a few texts ("100 %", "n=3", "no data") in every chart; matplotlib would lay
    out and rasterise each glyph of each one anew. Each distinct text and style is rendered once
    per process by matplotlib itself (same font, hinting, antialiasing) and pasted where it goes,
    at whole pixels, so a chart looks as if drawn text by text and stays byte-identical.
    """

    def __init__(self, families: tuple[str, ...]) -> None:
        super().__init__()
        self.families = families
        self.texts: list[str] = []  # what a reader sees, in drawing order
        self.places: list[tuple[float, float, str, Style]] = []
        self.set_zorder(3)  # above the cells, as text is

    def draw(self, renderer: RendererAgg) -> None:  # type: ignore[override]
        height = self.get_figure(root=True).get_figheight()  # type: ignore[union-attr]
        gc = renderer.new_gc()
        for x, y, shown, style in self.places:
            image, (dx, dy) = _stamp(shown, style, self.families)
            left = round(x * DPI) - dx
            bottom = round((height - y) * DPI) - dy
            renderer.draw_image(gc, left, bottom, image)
        gc.restore()


@lru_cache(maxsize=512)
def _stamp(
    shown: str, style: Style, families: tuple[str, ...]
) -> tuple[npt.NDArray[np.uint8], tuple[int, int]]:
    """`shown` rendered on a transparent image, and the pixel of the image its anchor is at."""
    options = dict(style)
    lines = shown.split("\n")
    size = float(options.get("size", 8))
    width = (
        ceil(max(len(line) for line in lines) * size * 1.1 / 72 * DPI) + 8
    )  # 1.1 em: wider than any glyph
    height = ceil(len(lines) * size * 1.6 / 72 * DPI) + 8
    anchor_x = width // 2 if options.get("ha") == "center" else 4
    anchor = (anchor_x, height // 2)
    with matplotlib.rc_context({**_STYLE, "font.family": list(families)}):
        figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        figure.patch.set_alpha(0.0)
        canvas = FigureCanvasAgg(figure)
        figure.text(anchor[0] / width, anchor[1] / height, shown, **options)
        canvas.draw()  # type: ignore[no-untyped-call]
    pixels = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    image = np.ascontiguousarray(np.asarray(pixels)[::-1])  # draw_image takes rows bottom-up
    return image, anchor


def _longest_fit(shown: str, fits: Callable[[str], bool]) -> str:
    """`shown`, or its longest prefix (plus "…") that `fits`, found by measurement: CJK, emoji
    and bold letters differ too much in width for a character count to be right."""
    if fits(shown):
        return shown
    low, high = 0, len(shown) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(shown[:middle].rstrip() + "…"):
            low = middle
        else:
            high = middle - 1
    return shown[:low].rstrip() + "…"


def _text_width(artist: Text, candidate: str, renderer: RendererAgg) -> float:
    """Inches `candidate` takes drawn as `artist`."""
    artist.set_text(candidate)
    return float(artist.get_window_extent(renderer).width) / DPI


@lru_cache(maxsize=512)
def _fitted(shown: str, style: Style, inches: float, families: tuple[str, ...]) -> str:
    """`shown` cut to `inches` wide in `style` (a grid text, measured once per process)."""
    options = dict(style)
    font = FontProperties(
        family=list(families), size=options.get("size"), weight=options.get("weight", "normal")
    )
    measure = _measuring_renderer().get_text_width_height_descent

    def fits(candidate: str) -> bool:
        return bool(measure(candidate, font, ismath=False)[0] <= inches * DPI)  # type: ignore[no-untyped-call]

    return _longest_fit(shown, fits)


@cache
def _measuring_renderer() -> RendererAgg:
    return RendererAgg(1, 1, DPI)  # type: ignore[no-untyped-call]


def _title(text: _Writer, grid: _Grid, title: str) -> None:
    text(MARGIN, 0.24, _plain(title), size=11, weight="bold", fit=WIDTH_INCHES - 2 * MARGIN)
    subtitle = "Attainment per month against each target"
    if grid.period:
        subtitle += f" · period {_span(grid.period)}"
    text(MARGIN, 0.5, subtitle, size=8, color=MUTED)


def _columns(grid: _Grid) -> tuple[float, float]:
    """Left edge of the first month and the width of a month column, in inches."""
    left = MARGIN + LABEL_WIDTH
    right = WIDTH_INCHES - MARGIN - PERIOD_WIDTH - GAP
    return left, (right - left) / len(grid.months)


def _header(text: _Writer, grid: _Grid) -> None:
    left, width = _columns(grid)
    y = TITLE_BAND + HEADER_BAND / 2
    for index, month in enumerate(grid.months):
        name = datetime.strptime(month, "%Y-%m").strftime("%b")
        dagger = "†" if month in grid.partial else ""
        x = left + (index + 0.5) * width
        text(x, y, f"{name}{dagger}\n{month[:4]}", size=7, ha="center", linespacing=1.1,
             stamp=True)  # fmt: skip
    text(WIDTH_INCHES - MARGIN - PERIOD_WIDTH / 2, y, "whole\nperiod", size=7, ha="center",
         weight="bold", linespacing=1.1, stamp=True)  # fmt: skip


def _row(
    text: _Writer, grid: _Grid, index: int, label: str, attainment: Attainment, margin: float
) -> None:
    top = TITLE_BAND + HEADER_BAND + index * ROW_HEIGHT
    middle = top + ROW_HEIGHT / 2
    text(
        MARGIN,
        middle - 0.08,
        _plain(label, LABEL_LIMIT),
        size=8,
        weight="bold",
        fit=LABEL_WIDTH - GAP,
        stamp=True,
    )
    target = f"target ≥ {attainment.target_percent:g} %"
    text(MARGIN, middle + 0.1, target, size=7, color=MUTED, stamp=True)
    left, width = _columns(grid)
    by_month = {m.month: m for m in attainment.monthly}
    for first, last in _empty_runs(grid.months, by_month):
        box = (left + first * width, top, (last - first + 1) * width)
        whole_row = (first, last) == (0, len(grid.months) - 1)
        _no_data(text, box, "no records in the period" if whole_row else "no data")
    for column, month in enumerate(grid.months):
        cell = by_month.get(month)
        if cell is not None:
            status = status_of(cell.attainment, attainment.target_percent, margin)
            _cell(
                text, (left + column * width, top, width), status, cell, attainment.target_percent
            )
    whole = (WIDTH_INCHES - MARGIN - PERIOD_WIDTH, top, PERIOD_WIDTH)
    _cell(text, whole, attainment.status, _whole(attainment), attainment.target_percent)


def _empty_runs(
    months: Sequence[str], by_month: dict[str, MonthlyAttainment]
) -> Iterator[tuple[int, int]]:
    """(first, last) column of each run of months without records: drawn as one blank box."""
    start = None
    for column, month in enumerate([*months, None]):
        empty = month is not None and month not in by_month
        if empty and start is None:
            start = column
        elif not empty and start is not None:
            yield start, column - 1
            start = None


def _whole(attainment: Attainment) -> MonthlyAttainment | None:
    if attainment.attainment is None:
        return None
    return MonthlyAttainment(
        month="", measured=attainment.measured, breached=attainment.breached,
        attainment=attainment.attainment,
    )  # fmt: skip


def _cell(
    text: _Writer,
    box: tuple[float, float, float],
    status: AttainmentStatus,
    cell: MonthlyAttainment | None,
    target: float,
) -> None:
    """One cell: the status colour, the percentage and the record count (or "no data")."""
    x, top, width = box
    if cell is None or cell.attainment is None:
        _no_data(text, box, "no data")
        return
    fill = FILL[status]
    text.boxes.fills.append((_box(x, top, width), fill))
    if cell.measured < LOW_VOLUME:
        text.boxes.hatched.setdefault(HATCH[status], []).append(_hatching(x, top, width))
        text.boxes.plates.append((_plate(x, top, width), fill))
    ink = "#ffffff" if status in ON_DARK else INK
    middle, centre = top + ROW_HEIGHT / 2, x + width / 2
    percent = _percent(cell.attainment, target)
    text(centre, middle - 0.075, percent, size=7, ha="center", color=ink, weight="bold", stamp=True)
    text(centre, middle + 0.1, f"n={cell.measured}", size=6, ha="center", color=ink, stamp=True)


def _no_data(text: _Writer, box: tuple[float, float, float], words: str) -> None:
    x, top, width = box
    text.boxes.fills.append((_box(x, top, width), NO_DATA_FILL))
    text(x + width / 2, top + ROW_HEIGHT / 2, words, size=6.5, ha="center", color=MUTED, stamp=True)


def _box(x: float, top: float, width: float) -> Corners:
    return _rectangle(x, top, width, ROW_HEIGHT)


def _hatching(x: float, top: float, width: float) -> Corners:
    """Hatch lines over a cell, inside its white border."""
    inset = 0.02
    return _rectangle(x + inset, top + inset, width - 2 * inset, ROW_HEIGHT - 2 * inset)


def _plate(x: float, top: float, width: float) -> Corners:
    """A patch of the cell's fill behind its two lines of text, so hatching never crosses them
    (a plate is one rectangle; a halo stroked around each glyph cost as much as the text)."""
    inset = PLATE_INSET
    return _rectangle(x + inset, top + 0.085, width - 2 * inset, ROW_HEIGHT - 0.155)


def _footer(figure: Figure, text: _Writer, grid: _Grid, height: float, margin: float) -> None:
    """The legend (outside the grid, so it hides nothing) and the notes on partial months."""
    handles = [  # filled column by column: met, at risk, missed on the first line
        Patch(facecolor=FILL[AttainmentStatus.MET], label="met"),
        Patch(facecolor=FILL[AttainmentStatus.MET], hatch=LOW_HATCH,
              edgecolor=HATCH[AttainmentStatus.MET],
              label=f"hatched: under {LOW_VOLUME} records, too few to judge"),
        Patch(facecolor=FILL[AttainmentStatus.AT_RISK],
              label=f"at risk: under {margin:g} points above target "
                    "(at most half the room to 100 %)"),
        Patch(facecolor=NO_DATA_FILL, edgecolor="#c8c8c8", label="no data: no records"),
        Patch(facecolor=FILL[AttainmentStatus.MISSED], label="missed: below target"),
    ]  # fmt: skip
    legend_top = (height - FOOTER_BAND + 0.05) / height
    figure.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(MARGIN / WIDTH_INCHES, 1 - legend_top),
        ncols=3, fontsize=7, frameon=False, handlelength=1.6, handleheight=1.0,
        columnspacing=1.2, borderaxespad=0.0, borderpad=0.0,
    )  # fmt: skip
    notes = ["n = records in the month; percentages are rounded down."]
    if grid.partial and grid.period:
        notes.append(f"† partial month: the period runs {_span(grid.period)}.")
    if grid.hidden_months:
        notes.append(f"Earlier months count in the whole period only ({grid.hidden_months}).")
    if grid.hidden_rows:
        notes.append(f"{grid.hidden_rows} more targets are listed in the pack.")
    text(MARGIN, height - 0.13, "  ".join(notes), size=6.5, color=MUTED)


# --- text -------------------------------------------------------------------------------------


def _percent(value: float, target: float) -> str:
    """Rounded down to the target's precision: 94.96 % against 95 % reads "94 %", not "95 %"."""
    decimals = min(2, len(f"{target:g}".partition(".")[2]))
    scale = 10**decimals
    shown = int(value * 100 * scale + 1e-9) / scale
    return "100 %" if shown >= 100 else f"{shown:.{decimals}f} %"


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"


def _span(period: ReviewPeriod) -> str:
    """'15 Jan 2024 \u2013 14 Jan 2025': first and last day (the period's end is exclusive)."""
    return f"{_day(period.start)} \u2013 {_day(_last_instant(period))}"


def _plain(text: str, limit: int = TITLE_LIMIT) -> str:
    """Text matplotlib shows literally and quickly: `$` would start mathtext; control characters
    have no glyph; a huge name (hostile data) would take minutes to lay out."""
    printable = "".join(c if c.isprintable() or ord(c) in _INVISIBLE else " " for c in text)
    return _cut(printable, limit).replace("$", r"\$")


def _cut(text: str, limit: int) -> str:
    """At most `limit` display columns (CJK and emoji count two), cut with an ellipsis."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if unicodedata.east_asian_width(char) in "WF" else 1
        if used > limit - 1 and index < len(text) - 1:
            return text[:index].rstrip() + "…"
    return text


def _drawable(text: str, fonts: _Fonts, replaced: set[str]) -> str:
    """`text` with invisible emoji joiners dropped and characters no font draws replaced.

    An undrawable symbol (emoji) is dropped; an undrawable letter or digit becomes "?" so a name
    in a script without a font still shows it is there. Replaced characters are collected for
    one log line.
    """
    out = []
    for char in text:
        if ord(char) in _INVISIBLE:
            continue
        if char in "\n " or fonts.draws(char):
            out.append(char)
            continue
        replaced.add(char)
        if unicodedata.category(char)[0] in "LN":
            out.append("?")
    shown = " ".join(part for part in "".join(out).split(" ") if part)
    return shown or "?"


# --- fonts and quiet rendering ---------------------------------------------------------------


@cache
def _fonts() -> _Fonts:
    """DejaVu Sans (bundled with matplotlib) and the fallback fonts installed on this machine."""
    paths = [str(font_manager.findfont("DejaVu Sans", fallback_to_default=False))]
    paths += [p for pattern in FALLBACK_FONTS for p in sorted(glob(pattern))]
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    families: list[str] = []
    covered: set[int] = set()
    for path in paths:
        family, charmap = _read_font(path)
        if family is None:
            continue
        if path not in known:
            font_manager.fontManager.addfont(path)
        if family not in families:
            families.append(family)
        covered |= charmap
    return _Fonts(tuple(families), frozenset(covered))


def _read_font(path: str) -> tuple[str | None, frozenset[int]]:
    try:
        face = ft2font.FT2Font(path)
        return face.family_name, frozenset(face.get_charmap())
    except (OSError, RuntimeError, ValueError):
        log.warning("chart.font_unreadable", path=Path(path).name)
        return None, frozenset()


@contextmanager
def _quiet() -> Iterator[set[str]]:
    """Capture matplotlib's warnings and log records for the duration of one render.

    Yields the set the renderer adds replaced characters to; captured messages are added to it
    too (prefixed "warning: ") so one structured log line reports both.
    """
    collected: set[str] = set()
    logger = logging.getLogger("matplotlib")
    handler = _Collect(collected)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if threading.current_thread() is not threading.main_thread():
            # The warning filters are the process's: changed from a chart thread they would
            # catch (and on leaving, undo) the main thread's (pytest's per test, say). Drawn
            # there, a chart relies on characters being replaced before drawing.
            yield collected
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield collected
        collected.update(f"warning: {w.message}" for w in caught)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# A fallback font without a bold face draws its glyphs in regular weight: expected, not news.
_EXPECTED = "findfont: Failed to find font weight"


class _Collect(logging.Handler):
    """Keeps matplotlib's WARNING records instead of letting them reach stderr."""

    def __init__(self, sink: set[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith(_EXPECTED):
            self.sink.add(f"warning: {message}")


def _report(replaced: set[str], fonts: _Fonts) -> None:
    """One structured warning for characters (or matplotlib warnings) not reported before."""
    new = sorted(replaced - _reported)
    if not new:
        return
    _reported.update(new)
    characters = [f"U+{ord(c):04X}" for c in new if len(c) == 1]
    messages = [m for m in new if len(m) > 1][:5]
    log.warning(
        "chart.glyphs_replaced",
        characters=characters[:20],
        matplotlib=messages,
        fonts=list(fonts.families),
        hint="left out of the chart; fonts-wqy-microhei (CJK), fonts-symbola (emoji) draw most",
    )
