"""The neutral review document as Atlassian Document Format (Jira Cloud, REST v3), and back
to plain text (`plain_text`) for what people write in comments.

Headings, paragraphs, bullet lists and tables map to their ADF nodes; mentions become ADF
mention nodes by accountId (which notify the person) when the person was found in Jira, and
"@Name" text otherwise (linking to their source record when the pack knows it); status lozenges
become ADF status nodes. The chart (an `Image`) is shown inline once the ticket carries it: a
`mediaSingle` holding an *external* `media` node whose URL is the attachment's content URL
(`/rest/api/3/attachment/content/{id}`); a `file` media node would need the Media Services id,
which the REST API does not give. Until the attachment exists the Image reads as a sentence
saying where it is. A line break in text is
a hardBreak node (a link's text stays on one line); text nodes never carry a raw line break,
tab or other control character.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from review import Document
from review.document import (
    BulletList,
    Heading,
    Image,
    Inline,
    Link,
    Mention,
    Paragraph,
    Status,
    Table,
    Text,
    attached_text,
)

AdfNode = dict[str, Any]
MentionResolver = Callable[[Mention], str | None]
ImageUrl = Callable[[Image], str | None]


def to_adf(
    document: Document, resolve: MentionResolver, image_url: ImageUrl | None = None
) -> AdfNode:
    """The ADF `doc` for `document`; `resolve` gives a mentioned person's accountId or None,
    `image_url` the content URL of an image's attachment or None (not attached yet)."""
    renderer = _AdfRenderer(resolve, image_url or (lambda image: None))
    return {"type": "doc", "version": 1, "content": [renderer.block(b) for b in document.blocks]}


class _AdfRenderer:
    def __init__(self, resolve: MentionResolver, image_url: ImageUrl) -> None:
        self.resolve = resolve
        self.image_url = image_url

    def block(self, block: Heading | Paragraph | BulletList | Table | Image) -> AdfNode:
        if isinstance(block, Image):
            return self.image(block)
        if isinstance(block, Heading):
            return {
                "type": "heading",
                "attrs": {"level": block.level},
                "content": self.inlines(block.content),
            }
        if isinstance(block, Paragraph):
            return self.paragraph(block.content)
        if isinstance(block, BulletList):
            items = [{"type": "listItem", "content": [self.paragraph(i)]} for i in block.items]
            return {"type": "bulletList", "content": items}
        return self.table(block)

    def paragraph(self, content: tuple[Inline, ...]) -> AdfNode:
        return {"type": "paragraph", "content": self.inlines(content)}

    def image(self, image: Image) -> AdfNode:
        """The attached image inline, or where it is while the ticket does not carry it."""
        url = self.image_url(image)
        if url is None:
            return self.paragraph((Text(text=attached_text(image)),))
        media = {"type": "media", "attrs": {"type": "external", "url": url, "alt": image.alt}}
        return {"type": "mediaSingle", "attrs": {"layout": "center"}, "content": [media]}

    def table(self, table: Table) -> AdfNode:
        header = [
            self.cell("tableHeader", (Text(text=name, strong=True),)) for name in table.header
        ]
        rows = [{"type": "tableRow", "content": header}]
        for row in table.rows:
            rows.append({"type": "tableRow", "content": [self.cell("tableCell", c) for c in row]})
        return {"type": "table", "attrs": {"isNumberColumnEnabled": False}, "content": rows}

    def cell(self, kind: str, content: tuple[Inline, ...]) -> AdfNode:
        return {"type": kind, "attrs": {}, "content": [self.paragraph(content)]}

    def inlines(self, content: tuple[Inline, ...]) -> list[AdfNode]:
        return [node for inline in content for node in self.inline(inline)]

    def inline(self, node: Inline) -> list[AdfNode]:
        if isinstance(node, Text):
            marks = [{"type": "strong"}] if node.strong else []
            return _text(node.text, marks)
        if isinstance(node, Link):
            link = [{"type": "link", "attrs": {"href": node.url}}]
            return _text(node.text or node.url, link, breaks=False)
        if isinstance(node, Mention):
            account_id = self.resolve(node)
            name = _one_line(node.name)
            if account_id is None:  # not in Jira: their source record, where it is known
                record = [{"type": "link", "attrs": {"href": node.url}}] if node.url else []
                return _text(f"@{name}", record, breaks=False)
            return [{"type": "mention", "attrs": {"id": account_id, "text": f"@{name}"}}]
        return [_status(node)]


def _text(value: str, marks: list[AdfNode], *, breaks: bool = True) -> list[AdfNode]:
    """Text nodes with a hardBreak at each line break (none where ADF would refuse an empty
    text node). Text nodes never hold a raw line break, tab or other control character: Jira
    shows them literally or not at all. Without `breaks` (link text) a line break is a space."""
    lines = _clean(value).split("\n")
    if not breaks:
        lines = [" ".join(lines)]
    nodes: list[AdfNode] = []
    for number, line in enumerate(lines):
        if number:
            nodes.append({"type": "hardBreak"})
        if line:
            node: AdfNode = {"type": "text", "text": line}
            if marks:
                node["marks"] = marks
            nodes.append(node)
    return nodes


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(value: str) -> str:
    """`value` with line breaks as `\\n`, tabs as a space, other control characters dropped."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _CONTROL.sub("", text)


def _one_line(value: str) -> str:
    """`value` on one line, for attributes (a mention's or lozenge's text)."""
    return " ".join(_clean(value).split("\n"))


_STATUS_COLORS = {"green": "green", "yellow": "yellow", "red": "red", "neutral": "neutral"}


def _status(node: Status) -> AdfNode:
    # A stable localId keeps the rendered body identical across runs (no spurious updates).
    local_id = hashlib.sha256(f"{node.text}:{node.color}".encode()).hexdigest()[:32]
    return {
        "type": "status",
        "attrs": {
            "text": _one_line(node.text).upper(),
            "color": _STATUS_COLORS[node.color.value],
            "localId": local_id,
        },
    }


# ---- reading back: ADF -> plain text -----------------------------------------------------------
_TEXT_BLOCKS = frozenset({"paragraph", "heading"})
_WIKI_ESCAPE = re.compile(r"\\([\\*_+^~?{}\[\]|!#\-])")
_SKIPPED = frozenset({"rule", "media", "mediaSingle", "mediaGroup", "extension"})


def plain_text(body: Any) -> str:
    """The text people wrote, from an ADF document (Cloud v3) or a wiki string (v2).

    Line breaks are kept: each paragraph, heading, list item and table row is a line, and a
    hardBreak is a line break, so "Decision: ..." written on its own line starts a line here.
    Mentions, emoji and status lozenges read as their text; media and rules are dropped. Wiki
    text keeps its markup, except backslash escapes (`slm\\-sync` reads "slm-sync").
    """
    if isinstance(body, str):
        return _WIKI_ESCAPE.sub(r"\1", body.replace("\r\n", "\n")).strip()
    if not isinstance(body, dict):
        return ""
    return "\n".join(_lines(body)).strip()


def _lines(node: AdfNode) -> list[str]:
    kind = node.get("type")
    children = [child for child in node.get("content") or [] if isinstance(child, dict)]
    if kind in _SKIPPED:
        return []
    if kind in _TEXT_BLOCKS:
        return ["".join(_inline(child) for child in children)]
    if kind == "tableRow":
        cells = [" ".join(_lines(cell)) for cell in children]
        return [" | ".join(cells)]
    if kind in _INLINE_KINDS:
        return [_inline(node)]
    return [line for child in children for line in _lines(child)]


_INLINE_KINDS = frozenset({"text", "hardBreak", "mention", "emoji", "status", "inlineCard", "date"})


def _inline(node: AdfNode) -> str:
    kind = node.get("type")
    attrs = node.get("attrs") or {}
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    if kind in ("mention", "status"):
        return str(attrs.get("text") or "")
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind == "inlineCard":
        return str(attrs.get("url") or "")
    if kind == "date":
        return _day(attrs.get("timestamp"))
    return "".join(_inline(child) for child in node.get("content") or [] if isinstance(child, dict))


def _day(timestamp: Any) -> str:
    """An ADF date node's day (its timestamp is milliseconds since the epoch, UTC)."""
    try:
        return datetime.fromtimestamp(int(timestamp) / 1000, UTC).date().isoformat()
    except (TypeError, ValueError, OverflowError):
        return ""
