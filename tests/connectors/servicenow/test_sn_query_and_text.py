"""Encoded queries built from data, and the plain-text rendering of review documents."""

from __future__ import annotations

import pytest

from connectors.servicenow import UnsafeQueryValue, render_text
from connectors.servicenow import query as q
from review import Document
from review import document as doc

SYS_ID = "1c741bd70b2322007518478d83673af3"


def test_keyset_condition_means_same_second_later_id_or_later_second() -> None:
    """`after` reads (updated >= U) AND (id > I OR updated > U): `^OR` binds tighter than `^`,
    so no NQ is needed and the other conditions are not repeated."""
    assert q.after("2025-01-02 10:00:00", SYS_ID) == (
        f"sys_updated_on>=2025-01-02 10:00:00^sys_id>{SYS_ID}^ORsys_updated_on>2025-01-02 10:00:00"
    )


def test_values_that_could_split_a_query_are_refused() -> None:
    """A caret in a value (the special service name) is refused, naming the field; '=' is
    harmless and kept."""
    with pytest.raises(UnsafeQueryValue) as caught:
        q.equals("name", 'Zahlungsverkehr "Überweisung" ^ SEPA=EU Straße')
    assert "name" in str(caught.value) and "sys_id" in str(caught.value)
    assert q.equals("name", "A=B") == "name=A=B"


def test_in_lists_refuse_commas_and_non_sys_ids() -> None:
    """IN lists refuse values with commas, and sys_id lists anything but 32 hex digits."""
    with pytest.raises(UnsafeQueryValue):
        q.one_of("email", ["a@example.com", "b,c@example.com"])
    with pytest.raises(UnsafeQueryValue):
        q.sys_ids_in("sys_id", [SYS_ID, "javascript:gs.getUserID()"])
    assert q.sys_ids_in("sys_id", [SYS_ID]) == f"sys_idIN{SYS_ID}"


def test_ticket_keys_are_checked_against_the_key_alphabet() -> None:
    """Idempotency keys pass as they are; a key with a caret or space is refused."""
    assert q.ticket_key("slm:2026-H1:abc_1.x:review") == "slm:2026-H1:abc_1.x:review"
    for bad in ("slm:2026:a b", "slm:^x"):
        with pytest.raises(UnsafeQueryValue):
            q.ticket_key(bad)


def test_plain_text_aligns_tables_and_names_people_and_status() -> None:
    """Headings are underlined, mentions read as names, status as [MET], links keep their
    URL, and table columns line up even with non-ASCII text."""
    document = Document(
        blocks=(
            doc.heading(1, "Zahlungsverkehr review"),
            doc.paragraph("Owner: ", doc.Mention(name="Hiro Xu", email="h@example.com")),
            doc.BulletList(items=((doc.Link(text="KB0010022", url="https://x/kb"),),)),
            doc.Table(
                header=("Target", "Attainment", "Status"),
                rows=(
                    ((doc.text("Straße P1"),), (doc.text("97.5 %"),), (doc.Status(text="MET"),)),
                    (
                        (doc.text("Availability"),),
                        (doc.text("99 %"),),
                        (doc.Status(text="MISSED"),),
                    ),
                ),
            ),
        )
    )
    text = render_text(document)
    assert text.startswith("Zahlungsverkehr review\n======================\n")
    assert "Owner: Hiro Xu" in text and "- KB0010022 (https://x/kb)" in text
    lines = text.splitlines()[-4:]
    assert lines[0].index("Attainment") == lines[2].index("97.5") == lines[3].index("99 %")
    assert lines[2].endswith("[MET]") and lines[3].endswith("[MISSED]")


def test_links_show_their_number_and_tables_list_urls_below() -> None:
    """A link reads "text (url)"; in a table the cell holds the number only (the column stays
    narrow) and the URL is listed under the table, in row order."""
    url = "https://sn.example/task_sla.do?sys_id=6b462e3acc2d7d507addf0510d62eff2"
    document = Document(
        blocks=(
            doc.BulletList(
                items=((doc.Link(text="PRB0040001", url="https://sn.example/p"), doc.text(": x")),)
            ),
            doc.Table(
                header=("Task", "Took"),
                rows=(((doc.Link(text="INC0010723", url=url),), (doc.text("4 h"),)),),
            ),
        )
    )
    lines = render_text(document).splitlines()
    assert lines[0] == "- PRB0040001 (https://sn.example/p): x"
    assert lines[1:] == ["", "Task        Took", "----------  ----", "INC0010723  4 h", "",
                         f"INC0010723: {url}"]  # fmt: skip
