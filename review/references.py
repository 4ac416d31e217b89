"""How a pack names a record people may open: its number as the link, then its title.

Records are shown by the number people know them by (INC0010001, KB0010001, PRB0040001,
SLM-12), never by an id they cannot use (a 32-hex sys_id, an internal key such as
`review:slm:2026:…`). A title that already starts with its number (as source titles often do:
"PRB0040001: Mail queue stalls") is shown without it, so the number is not repeated.
"""

from __future__ import annotations

from functools import lru_cache

from review import document as doc
from review.model import Material, Person

_SEPARATORS = " :-\u2013"  # space, colon, hyphen, en dash


def reference(number: str | None, title: str, url: str | None) -> tuple[doc.Inline, ...]:
    """`number: title`, the number linking to `url`; without a number, the title is the link."""
    if not number:
        return (_link(title, url),)
    rest = _without_number(title, number)
    return (_link(number, url), doc.text(f": {rest}")) if rest else (_link(number, url),)


@lru_cache(maxsize=16384)
def person_mention(person: Person) -> doc.Mention:
    """A person as a mention, linking to their record in the source where it has a URL (one
    immutable node per person: a plan mentions the same people in thousands of tickets)."""
    url = person.source.url if person.source is not None else None
    return doc.Mention(name=person.name, email=person.email, url=url)


def material_reference(material: Material) -> tuple[doc.Inline, ...]:
    """A material as people know it (see `reference`); its key is never shown."""
    return reference(material.number, material.title, material.url)


def _link(text: str, url: str | None) -> doc.Inline:
    return doc.Link(text=text, url=url) if url else doc.text(text)


def _without_number(title: str, number: str) -> str:
    """`title` without a leading `number` and the separator after it."""
    if title.casefold().startswith(number.casefold()):
        rest = title[len(number) :]
        if not rest or rest[0] in _SEPARATORS:
            return rest.lstrip(_SEPARATORS)
    return title
