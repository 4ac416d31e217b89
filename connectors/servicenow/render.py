"""The neutral review document as readable plain text, for ServiceNow `description` and notes.

Task descriptions and work notes are plain text fields: headings are underlined, lists get
"- ", links read "text (url)" (in tables the cell shows the text, the URL is listed below
the table), mentions are names, status lozenges read `[MET]`, and tables are
aligned in fixed-width columns (padded by display width, so umlauts do not shift columns).
An image (the chart) links its attachment once the record carries it ("Chart ...: <url>" with
the instance's `sys_attachment.do?sys_id=` URL), and says it is attached until then.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

from review import Document
from review import document as doc

UNDERLINE = {1: "=", 2: "-"}
ImageUrl = Callable[[doc.Image], str | None]


def render_text(document: Document, image_url: ImageUrl | None = None) -> str:
    """The whole document as plain text, blocks separated by a blank line; `image_url` gives
    the URL of an image's attachment, or None while the record does not carry it."""
    blocks = (_image(b, image_url) if isinstance(b, doc.Image) else b for b in document.blocks)
    return "\n\n".join(_block(block) for block in blocks).rstrip() + "\n"


def _image(image: doc.Image, image_url: ImageUrl | None) -> doc.Block:
    url = image_url(image) if image_url is not None else None
    if url is None:
        return image
    return doc.Paragraph(content=(doc.Text(text=f"{image.alt}: "), doc.Link(text=url, url=url)))


def _block(block: doc.Block) -> str:
    if isinstance(block, doc.Heading):
        title = _inline(block.content)
        mark = UNDERLINE.get(block.level)
        return f"{title}\n{mark * _width(title)}" if mark else title.upper()
    if isinstance(block, doc.Paragraph):
        return _inline(block.content)
    if isinstance(block, doc.BulletList):
        return "\n".join(f"- {_inline(item)}" for item in block.items)
    if isinstance(block, doc.Image):
        return doc.attached_text(block)
    return _table(block)


def _inline(nodes: Sequence[doc.Inline], *, urls: bool = True) -> str:
    return "".join(_node(node, urls=urls) for node in nodes)


def _node(node: doc.Inline, *, urls: bool = True) -> str:
    if isinstance(node, doc.Link):
        shown = node.text or node.url
        return shown if not urls or shown == node.url else f"{shown} ({node.url})"
    if isinstance(node, doc.Mention):
        return node.name
    if isinstance(node, doc.Status):
        return f"[{node.text}]"
    return node.text


def _table(table: doc.Table) -> str:
    """Aligned columns; links show their text in the cell and their URL in a list below, so a
    long URL does not widen the column."""
    cells = [[_inline(cell, urls=False) for cell in row] for row in table.rows]
    rows = [list(table.header), *cells]
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]  # one line per row
    widths = [max(_width(row[i]) for row in rows) for i in range(len(table.header))]
    lines = [_row(row, widths) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    links = [
        node
        for row in table.rows
        for cell in row
        for node in cell
        if isinstance(node, doc.Link) and node.text and node.text != node.url
    ]
    if links:
        lines += ["", *(f"{' '.join(link.text.split())}: {link.url}" for link in links)]
    return "\n".join(lines)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [
        cell + " " * (width - _width(cell)) for cell, width in zip(cells, widths, strict=True)
    ]
    return "  ".join(padded).rstrip()


def _width(text: str) -> int:
    """Columns `text` takes in a fixed-width font (wide East Asian characters take two)."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width
