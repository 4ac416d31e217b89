"""Atlassian Document Format (ADF) for the Jira stand-in: check, build from text, flatten to wiki.

Cloud REST v3 takes and returns ADF for ``description``, ``environment``, comments and textarea
custom fields; REST v2 (Cloud and Data Center) takes and returns wiki-markup strings. The store
keeps text as written; these helpers convert when the other API version reads it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["adf_error", "adf_to_wiki", "media_attachment_ids", "text_to_adf"]

ADF_REQUIRED = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"

# Node types and the marks the stand-in accepts; the real schema is larger, these are the ones
# a review pack needs (anything else is refused, so a renderer bug shows up in tests).
_BLOCKS = {
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "listItem",
    "table",
    "tableRow",
    "tableHeader",
    "tableCell",
    "codeBlock",
    "blockquote",
    "rule",
    "panel",
    "expand",
    "mediaSingle",
    "media",
}
_INLINES = {"text", "hardBreak", "mention", "emoji", "inlineCard", "status", "date"}
_MARKS = {"strong", "em", "code", "link", "underline", "strike", "subsup", "textColor"}


_CONTENT_URL = re.compile(r"/rest/api/[23]/attachment/content/(\d+)$")


def media_attachment_ids(value: Any) -> list[int]:
    """The attachment ids the external media nodes of an ADF document show (by their URL
    `.../rest/api/3/attachment/content/{id}`), in document order."""
    found: list[int] = []
    if isinstance(value, dict):
        attrs = value.get("attrs") or {}
        if value.get("type") == "media" and isinstance(attrs, dict):
            match = _CONTENT_URL.search(str(attrs.get("url") or ""))
            if attrs.get("type") == "external" and match:
                found.append(int(match.group(1)))
        for child in value.get("content") or []:
            found.extend(media_attachment_ids(child))
    return found


def adf_error(value: Any) -> str | None:
    """Why ``value`` is not an ADF document Jira would accept, or None if it is one."""
    if not isinstance(value, dict) or value.get("type") != "doc" or value.get("version") != 1:
        return ADF_REQUIRED
    content = value.get("content")
    if not isinstance(content, list):
        return ADF_REQUIRED
    for node in content:
        problem = _node_error(node)
        if problem:
            return f"{ADF_REQUIRED}: {problem}"
    return None


def _node_error(node: Any) -> str | None:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return "every node needs a 'type'"
    kind = node["type"]
    if kind not in _BLOCKS and kind not in _INLINES:
        return f"unknown node type '{kind}'"
    if kind == "text":
        return _text_error(node)
    children = node.get("content", [])
    if not isinstance(children, list):
        return f"'{kind}' content must be a list"
    for child in children:
        problem = _node_error(child)
        if problem:
            return problem
    return None


def _text_error(node: dict[str, Any]) -> str | None:
    if not isinstance(node.get("text"), str) or not node["text"]:
        return "text nodes need a non-empty 'text'"
    for mark in node.get("marks", []):
        if not isinstance(mark, dict) or mark.get("type") not in _MARKS:
            return f"unknown mark {mark!r}"
    return None


def text_to_adf(text: str) -> dict[str, Any]:
    """A plain or wiki string as the ADF document Jira Cloud shows for it (paragraphs)."""
    paragraphs = [block for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    return {"type": "doc", "version": 1, "content": [_paragraph(p) for p in paragraphs]}


def _paragraph(block: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for index, line in enumerate(block.split("\n")):
        if index:
            content.append({"type": "hardBreak"})
        if line:
            content.append({"type": "text", "text": line})
    return {"type": "paragraph", "content": content}


def adf_to_wiki(doc: dict[str, Any]) -> str:
    """Flatten an ADF document to the wiki markup REST v2 returns for it."""
    return "\n\n".join(_block_wiki(node) for node in doc.get("content", [])).strip()


def _block_wiki(node: dict[str, Any], depth: int = 1) -> str:
    kind = node.get("type")
    children = node.get("content", [])
    if kind == "heading":
        return f"h{node.get('attrs', {}).get('level', 1)}. {_inline_wiki(children)}"
    if kind in {"bulletList", "orderedList"}:
        bullet = ("*" if kind == "bulletList" else "#") * depth
        return "\n".join(_list_item_wiki(item, bullet, depth) for item in children)
    if kind == "table":
        return "\n".join(_row_wiki(row) for row in children)
    if kind == "codeBlock":
        return "{code}\n" + _inline_wiki(children) + "\n{code}"
    if kind == "rule":
        return "----"
    if kind in {"blockquote", "panel", "expand"}:
        return "\n\n".join(_block_wiki(child) for child in children)
    return _inline_wiki(children)


def _list_item_wiki(item: dict[str, Any], bullet: str, depth: int) -> str:
    lines: list[str] = []
    for child in item.get("content", []):
        if child.get("type") in {"bulletList", "orderedList"}:
            lines.append(_block_wiki(child, depth + 1))
        else:
            lines.append(f"{bullet} {_block_wiki(child, depth)}")
    return "\n".join(lines)


def _row_wiki(row: dict[str, Any]) -> str:
    cells = row.get("content", [])
    separator = "||" if cells and cells[0].get("type") == "tableHeader" else "|"
    texts = [" ".join(_block_wiki(block) for block in cell.get("content", [])) for cell in cells]
    return separator + separator.join(texts) + separator


def _inline_wiki(nodes: list[dict[str, Any]]) -> str:
    return "".join(_one_inline_wiki(node) for node in nodes)


def _one_inline_wiki(node: dict[str, Any]) -> str:
    kind = node.get("type")
    attrs = node.get("attrs", {})
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        return f"[~accountid:{attrs.get('id', '')}]"
    if kind == "inlineCard":
        return f"[{attrs.get('url', '')}]"
    if kind == "status":
        return f"{{status:{attrs.get('text', '')}}}"
    if kind != "text":
        return _inline_wiki(node.get("content", []))
    text = str(node.get("text", ""))
    for mark in node.get("marks", []):
        text = _mark_wiki(text, mark)
    return text


def _mark_wiki(text: str, mark: dict[str, Any]) -> str:
    kind = mark.get("type")
    if kind == "link":
        return f"[{text}|{mark.get('attrs', {}).get('href', '')}]"
    wrappers = {"strong": "*", "em": "_", "strike": "-", "underline": "+"}
    if kind == "code":
        return "{{" + text + "}}"
    wrapper = wrappers.get(str(kind), "")
    return f"{wrapper}{text}{wrapper}"
