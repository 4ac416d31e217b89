"""Render a neutral document as Markdown or as a self-contained HTML page, for local reports.

`slm-sync report` writes a review pack next to its chart so a service owner can read it without
any ticket. Every piece of text is escaped: service names carry quotes, `<`, `^`, `|` and
non-ASCII letters. The chart is referenced by the relative file name the caller gives and placed
under the "Monthly attainment" heading (or at the end if the document has none). People read
"@Name", linking to their record in the source (a ServiceNow `sys_user` form) where the pack
knows it; the link text is the name, never the record's id.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from review import document as doc
from review.pack import CHART_HEADING

CHART_ALT = "Monthly attainment per agreement"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|<>~&])")
_MD_LINE_START = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)]))")
_SAFE_SCHEMES = {"http", "https", "mailto", ""}


def render_markdown(
    document: doc.Document, *, title: str | None = None, chart: str | None = None
) -> str:
    """The document as CommonMark/GFM text (tables as pipe tables)."""
    parts: list[str] = [f"# {md_escape(title)}"] if title else []
    placed = False
    for block in document.blocks:
        if isinstance(block, doc.Image):  # the report shows its own copy of the chart (`chart`)
            continue
        parts.append(_md_block(block))
        if chart and not placed and _is_chart_heading(block):
            parts.append(_md_image(chart))
            placed = True
    if chart and not placed:
        parts.append(_md_image(chart))
    return "\n\n".join(parts) + "\n"


def render_html(document: doc.Document, *, title: str, chart: str | None = None) -> str:
    """The document as one HTML page with inline styles and no external resources but the chart."""
    body: list[str] = [f"<h1>{_h(title)}</h1>"]
    placed = False
    for block in document.blocks:
        if isinstance(block, doc.Image):  # the report shows its own copy of the chart (`chart`)
            continue
        body.append(_html_block(block))
        if chart and not placed and _is_chart_heading(block):
            body.append(_html_image(chart))
            placed = True
    if chart and not placed:
        body.append(_html_image(chart))
    return _PAGE.format(title=_h(title), style=_STYLE, body="\n".join(body))


def md_escape(value: str) -> str:
    """Text that Markdown shows literally (one line: newlines become spaces)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", value))
    # A list marker or ordered-list number at the start of a block would start a list.
    return _MD_LINE_START.sub(_escape_marker, escaped)


def _escape_marker(match: re.Match[str]) -> str:
    indent, bullet, number, dot = match.groups()
    return f"{indent}\\{bullet}" if bullet else f"{indent}{number}\\{dot}"


def _is_chart_heading(block: doc.Block) -> bool:
    return (
        isinstance(block, doc.Heading)
        and "".join(doc.plain_text(node) for node in block.content) == CHART_HEADING
    )


def _safe_url(url: str) -> str | None:
    """The URL if its scheme cannot run script (no javascript:, data:), else None."""
    scheme = urlsplit(url.strip()).scheme.lower()
    return url if scheme in _SAFE_SCHEMES else None


# Markdown ------------------------------------------------------------------------------------


def _md_block(block: doc.Block) -> str:
    if isinstance(block, doc.Heading):
        return "#" * (block.level + 1) + " " + _md_inline(block.content)
    if isinstance(block, doc.Paragraph):
        return _md_inline(block.content)
    if isinstance(block, doc.BulletList):
        return "\n".join(f"- {_md_inline(item)}" for item in block.items)
    if isinstance(block, doc.Image):
        return md_escape(doc.attached_text(block))
    header = "| " + " | ".join(md_escape(h) for h in block.header) + " |"
    rule = "|" + "|".join("---" for _ in block.header) + "|"
    rows = ["| " + " | ".join(_md_inline(cell) for cell in row) + " |" for row in block.rows]
    return "\n".join([header, rule, *rows])


def _md_inline(nodes: Sequence[doc.Inline]) -> str:
    return "".join(_md_node(node) for node in nodes)


def _md_node(node: doc.Inline) -> str:
    if isinstance(node, doc.Text):
        if not node.strong or not node.text.strip():
            return md_escape(node.text)
        # Emphasis must hug its text: keep surrounding spaces outside the asterisks.
        core = node.text.strip()
        lead = " " if node.text[0].isspace() else ""
        trail = " " if node.text[-1].isspace() else ""
        return f"{lead}**{md_escape(core)}**{trail}"
    if isinstance(node, doc.Link):
        url = _safe_url(node.url)
        if url is None:
            return md_escape(node.text)
        return f"[{md_escape(node.text)}](<{url.replace('>', '%3E').replace(' ', '%20')}>)"
    if isinstance(node, doc.Mention):
        return (
            _md_node(doc.Link(text=f"@{node.name}", url=node.url))
            if node.url
            else (f"@{md_escape(node.name)}")
        )
    return f"**\\[{md_escape(node.text)}\\]**"


def _md_image(chart: str) -> str:
    return f"![{md_escape(CHART_ALT)}](<{chart.replace('>', '%3E')}>)"


# HTML ----------------------------------------------------------------------------------------


def _h(value: str) -> str:
    return html.escape(value, quote=True)


def _html_block(block: doc.Block) -> str:
    if isinstance(block, doc.Heading):
        level = block.level + 1
        return f"<h{level}>{_html_inline(block.content)}</h{level}>"
    if isinstance(block, doc.Paragraph):
        return f"<p>{_html_inline(block.content)}</p>"
    if isinstance(block, doc.BulletList):
        items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, doc.Image):
        return f"<p>{_h(doc.attached_text(block))}</p>"
    head = "".join(f"<th>{_h(h)}</th>" for h in block.header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_html_inline(cell)}</td>" for cell in row) + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_inline(nodes: Sequence[doc.Inline]) -> str:
    return "".join(_html_node(node) for node in nodes)


def _html_node(node: doc.Inline) -> str:
    if isinstance(node, doc.Text):
        return f"<strong>{_h(node.text)}</strong>" if node.strong else _h(node.text)
    if isinstance(node, doc.Link):
        url = _safe_url(node.url)
        return f'<a href="{_h(url)}">{_h(node.text)}</a>' if url else _h(node.text)
    if isinstance(node, doc.Mention):
        return _html_mention(node)
    return f'<span class="status status-{node.color.value}">{_h(node.text)}</span>'


def _html_mention(node: doc.Mention) -> str:
    """`@Name`, a link to the person's source record where known; the e-mail as its title."""
    title = f' title="{_h(node.email)}"' if node.email else ""
    url = _safe_url(node.url) if node.url else None
    if url is None:
        return f'<span class="mention"{title}>@{_h(node.name)}</span>'
    return f'<a class="mention" href="{_h(url)}"{title}>@{_h(node.name)}</a>'


def _html_image(chart: str) -> str:
    return f'<p><img src="{_h(chart)}" alt="{_h(CHART_ALT)}" width="800"></p>'


_STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; color: #172b4d; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #c1c7d0; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f4f5f7; }
.mention { color: #0052cc; }
.status { font-size: 0.8em; font-weight: bold; padding: 0.1em 0.4em; border-radius: 3px; }
.status-green { background: #e3fcef; color: #006644; }
.status-yellow { background: #fffae6; color: #974f0c; }
.status-red { background: #ffebe6; color: #bf2600; }
.status-neutral { background: #dfe1e6; color: #42526e; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""
