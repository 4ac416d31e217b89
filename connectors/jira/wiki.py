"""The neutral review document as Jira wiki markup (Data Center, REST v2).

Data is escaped so that a service name with `|`, `*`, `{` or `[` cannot break a table, a link or
the text around it; table cells never contain a line break.
"""

from __future__ import annotations

import re
from collections.abc import Callable

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

MentionResolver = Callable[[Mention], str | None]
# Characters with a meaning in wiki markup; a backslash makes each one literal.
_SPECIAL = re.compile(r"([\\*_+^~?{}\[\]|!#\-])")
_COLORS = {"green": "green", "yellow": "#b58b00", "red": "red", "neutral": "gray"}


def escape(value: str) -> str:
    """`value` as literal wiki text: markup characters escaped, line breaks as spaces."""
    return _SPECIAL.sub(r"\\\1", value.replace("\r", " ").replace("\n", " "))


def to_wiki(document: Document, resolve: MentionResolver) -> str:
    """Wiki markup for `document`; `resolve` gives a mentioned person's user name or None."""
    return "\n\n".join(_block(block, resolve) for block in document.blocks)


def _block(
    block: Heading | Paragraph | BulletList | Table | Image, resolve: MentionResolver
) -> str:
    if isinstance(block, Image):  # the attachment of that name, shown inline
        if _FILE_NAME.fullmatch(block.file):
            return f"!{block.file}!"
        return escape(attached_text(block))
    if isinstance(block, Heading):
        return f"h{block.level}. {_inlines(block.content, resolve)}"
    if isinstance(block, Paragraph):
        return _inlines(block.content, resolve)
    if isinstance(block, BulletList):
        return "\n".join(f"* {_inlines(item, resolve)}" for item in block.items)
    return _table(block, resolve)


def _table(table: Table, resolve: MentionResolver) -> str:
    lines = ["||" + "||".join(escape(name) or " " for name in table.header) + "||"]
    for row in table.rows:
        lines.append("|" + "|".join(_inlines(cell, resolve) or " " for cell in row) + "|")
    return "\n".join(lines)


def _inlines(content: tuple[Inline, ...], resolve: MentionResolver) -> str:
    return "".join(_inline(node, resolve) for node in content)


def _inline(node: Inline, resolve: MentionResolver) -> str:
    if isinstance(node, Text):
        text = escape(node.text)
        return f"*{text}*" if node.strong and text.strip() else text
    if isinstance(node, Link):
        return f"[{escape(node.text or node.url)}|{_url(node.url)}]"
    if isinstance(node, Mention):
        name = resolve(node)
        if name and _SAFE_NAME.match(name):
            return f"[~{name}]"
        if node.url:  # not in Jira: their source record
            return f"[@{escape(node.name)}|{_url(node.url)}]"
        return f"@{escape(node.name)}"
    return _status(node)


def _status(node: Status) -> str:
    color = _COLORS[node.color.value]
    return f"{{color:{color}}}*{escape(node.text.upper())}*{{color}}"


_SAFE_NAME = re.compile(r"^[^\]\[|~\s]+$")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # shown inline as !file! (no markup in it)


def _url(url: str) -> str:
    """A link target that cannot end the link early: `|`, `]`, `[`, spaces percent-encoded."""
    return url.replace("|", "%7C").replace("]", "%5D").replace("[", "%5B").replace(" ", "%20")
