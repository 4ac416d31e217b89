"""The monthly attainment chart of a review pack, as PNG bytes.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global figure state), with a
fixed size, resolution and bundled font, and without the PNG metadata matplotlib would add
(Software tag): equal input gives byte-identical output, so the sync layer re-attaches the chart
only when the data changed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from review.model import Attainment

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8.0, 4.0, 100
MAX_LINES = 8
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
# Any: matplotlib types rc keys as a Literal union; this dict holds only valid keys.
_STYLE: Any = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "path.simplify": False,
    "text.usetex": False,
}


def attainment_chart(title: str, series: Sequence[tuple[str, Attainment]]) -> bytes:
    """A PNG line chart: monthly attainment (%) per agreement, each target dashed.

    `series` pairs a short label ("Resolution P1") with the agreement's attainment; at most
    MAX_LINES agreements with monthly data are drawn, in the given order.
    """
    drawn = [(label, a) for label, a in series if any(m.attainment is not None for m in a.monthly)]
    drawn = drawn[:MAX_LINES]
    months = sorted({m.month for _, a in drawn for m in a.monthly})
    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for index, (label, attainment) in enumerate(drawn):
            color = COLORS[index % len(COLORS)]
            points = [
                (months.index(m.month), m.attainment * 100)
                for m in attainment.monthly
                if m.attainment is not None
            ]
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o", markersize=3, color=color, label=_plain(label))
            axes.axhline(attainment.target_percent, color=color, linestyle="--", linewidth=0.8)
        _decorate(axes, title, months, bool(drawn))
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _decorate(axes: Axes, title: str, months: list[str], has_data: bool) -> None:
    axes.set_title(_plain(title))
    axes.set_ylabel("met within target (%)")
    axes.set_xticks(range(len(months)))
    axes.set_xticklabels(months, rotation=45, ha="right")
    axes.grid(True, linewidth=0.3)
    if has_data:
        axes.legend(loc="lower left", fontsize=7)
    else:
        axes.text(0.5, 0.5, "no data in the period", ha="center", transform=axes.transAxes)
        axes.set_ylim(0, 100)


TITLE_LIMIT = 90


def _plain(text: str) -> str:
    """Text matplotlib shows literally and quickly: `$` would start mathtext; control characters
    have no glyph; a huge name (hostile data) would take minutes to lay out."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    if len(printable) > TITLE_LIMIT:
        printable = printable[: TITLE_LIMIT - 1] + "…"
    return printable.replace("$", r"\$")
