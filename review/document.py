"""The neutral document model review packs are written in.

Target connectors render it: Atlassian Document Format on Jira Cloud, wiki markup on Jira Data
Center, aligned plain text on ServiceNow. It holds only what all three can show: headings,
paragraphs, tables, bullet lists, an attached image (the chart), and inline text, links, mentions
of people and status lozenges.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Text(_Node):
    """Plain text; `strong` renders bold."""

    type: Literal["text"] = "text"
    text: str
    strong: bool = False


class Link(_Node):
    """A hyperlink with visible text."""

    type: Literal["link"] = "link"
    text: str
    url: str


class Mention(_Node):
    """A person, mentioned so the target notifies them (rendered as a name where it cannot).

    `url`: their record in the source (a ServiceNow `sys_user` form), which renderers link
    where the person is not mentioned natively (not found in Jira, the HTML / Markdown report).
    The link text is always the name, never the record's id.
    """

    type: Literal["mention"] = "mention"
    name: str
    email: str | None = None
    url: str | None = None

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # Without a URL the node serializes as it did before it had one: the spec hash of a
        # ticket without people links stays the same (no spurious update).
        data: dict[str, object] = handler(self)
        if data.get("url") is None:
            data.pop("url", None)
        return data


class StatusColor(StrEnum):
    """Lozenge colours every target can show in some form."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    NEUTRAL = "neutral"


class Status(_Node):
    """A status lozenge such as MET / AT RISK / MISSED."""

    type: Literal["status"] = "status"
    text: str
    color: StatusColor = StatusColor.NEUTRAL


Inline = Annotated[Text | Link | Mention | Status, Field(discriminator="type")]


class Heading(_Node):
    """A section heading, level 1-4."""

    type: Literal["heading"] = "heading"
    level: int = Field(ge=1, le=4)
    content: tuple[Inline, ...]


class Paragraph(_Node):
    """A paragraph of inline content."""

    type: Literal["paragraph"] = "paragraph"
    content: tuple[Inline, ...]


class BulletList(_Node):
    """A bullet list; each item is a line of inline content."""

    type: Literal["list"] = "list"
    items: tuple[tuple[Inline, ...], ...]


class Table(_Node):
    """A table with one header row; every row has as many cells as the header."""

    type: Literal["table"] = "table"
    header: tuple[str, ...]
    rows: tuple[tuple[tuple[Inline, ...], ...], ...]


class Image(_Node):
    """An image attached to the ticket, by its file name (the pack's chart). Targets that can
    show an attachment inline by name do so (Jira Data Center wiki `!file!`); the others say
    where it is (`alt` and that it is attached)."""

    type: Literal["image"] = "image"
    file: str
    alt: str


Block = Annotated[Heading | Paragraph | BulletList | Table | Image, Field(discriminator="type")]


class Document(_Node):
    """A sequence of blocks: the body of a review ticket or report."""

    blocks: tuple[Block, ...] = ()


def text(value: str, *, strong: bool = False) -> Text:
    """Shorthand for a text node (nodes are immutable: the same labels and separators, made
    thousands of times a plan, are one node each)."""
    return _text(value, strong)


@lru_cache(maxsize=4096)
def _text(value: str, strong: bool) -> Text:
    return Text(text=value, strong=strong)


def paragraph(*content: Inline | str) -> Paragraph:
    """A paragraph from inline nodes, plain strings becoming text."""
    return Paragraph(content=tuple(text(c) if isinstance(c, str) else c for c in content))


def heading(level: int, value: str) -> Heading:
    """A heading with plain text."""
    return Heading(level=level, content=(text(value),))


def plain_text(node: Inline) -> str:
    """The visible text of an inline node, for targets that cannot show richer markup."""
    if isinstance(node, Mention):
        return f"@{node.name}"
    if isinstance(node, Status):
        return f"[{node.text}]"
    return node.text


def attached_text(image: Image) -> str:
    """What a target that cannot show `image` inline says instead."""
    return f"{image.alt}: the image attached to this ticket."


def document_text(document: Document) -> str:
    """The visible words of a whole document, block by block (headings, paragraphs, list items,
    table headers and cells), as `plain_text` shows each inline node."""
    lines: list[str] = []
    for block in document.blocks:
        if isinstance(block, Heading | Paragraph):
            lines.append("".join(plain_text(node) for node in block.content))
        elif isinstance(block, BulletList):
            lines += ["".join(plain_text(node) for node in item) for item in block.items]
        elif isinstance(block, Image):
            lines.append(attached_text(block))
        else:
            lines.append(" ".join(block.header))
            lines += [
                " ".join("".join(plain_text(node) for node in cell) for cell in row)
                for row in block.rows
            ]
    return "\n".join(lines)
