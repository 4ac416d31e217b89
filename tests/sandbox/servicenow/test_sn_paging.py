"""Table API paging: keyset by (sys_updated_on, sys_id), offset with Link headers, the cap."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox import Sandbox


def _keyset_pages(sn: Any, table: str, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: tuple[str, str] | None = None
    while True:
        query = "ORDERBYsys_updated_on^ORDERBYsys_id"
        if cursor is not None:
            stamp, sys_id = cursor
            query = f"sys_updated_on>{stamp}^NQsys_updated_on={stamp}^sys_id>{sys_id}^" + query
        rows = sn.rows(
            table,
            sysparm_query=query,
            sysparm_limit=limit,
            sysparm_fields="sys_id,sys_updated_on",
            sysparm_no_count="true",
        )
        if not rows:
            return pages
        pages.append(rows)
        cursor = (rows[-1]["sys_updated_on"], rows[-1]["sys_id"])


def test_keyset_paging_returns_every_task_sla_row_exactly_once(sn: Any, sandbox: Sandbox) -> None:
    """Keyset paging on (sys_updated_on, sys_id) visits each of the 5000 rows once, although
    many rows share one sys_updated_on second."""
    pages = _keyset_pages(sn, "task_sla", 700)
    ids = [row["sys_id"] for page in pages for row in page]
    assert len(ids) == len(set(ids)) == len(sandbox.estate.sla_records) == 5000
    stamps = [row["sys_updated_on"] for page in pages for row in page]
    assert len(set(stamps)) < len(stamps) / 10  # batches share their second


def test_offset_paging_follows_link_headers_to_the_end(sn: Any) -> None:
    """`Link` names first / next / last like the real API; following `next` ends on the last
    page, and X-Total-Count gives the total."""
    url = sn.base_url + "/api/now/table/incident"
    params: dict[str, Any] | None = {"sysparm_limit": 1000, "sysparm_fields": "sys_id"}
    seen: list[str] = []
    total = None
    while url:
        response = sn.session.get(url, params=params, timeout=10)
        params = None  # the next link carries every parameter
        total = int(response.headers["X-Total-Count"])
        seen += [row["sys_id"] for row in response.json()["result"]]
        links = dict(
            (rel, link)
            for link, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', response.headers["Link"])
        )
        assert "first" in links and "last" in links
        url = links.get("next", "")
    assert total is not None and len(seen) == len(set(seen)) == total


def test_prev_link_appears_after_the_first_page(sn: Any) -> None:
    """A page past the first names its predecessor with rel="prev"."""
    response = sn.get("/api/now/table/incident", sysparm_limit=10, sysparm_offset=20)
    assert 'rel="prev"' in response.headers["Link"]
    assert "sysparm_offset=10" in response.headers["Link"].split(';rel="prev"')[0]


def test_no_count_drops_the_total_header(sn: Any) -> None:
    """With sysparm_no_count=true there is no X-Total-Count (and no rel="last")."""
    response = sn.get("/api/now/table/incident", sysparm_limit=5, sysparm_no_count="true")
    assert "X-Total-Count" not in response.headers
    assert 'rel="next"' in response.headers["Link"]
    assert 'rel="last"' not in response.headers["Link"]


def test_limit_is_capped_at_10000_silently(
    sandbox_factory: Callable[..., Sandbox], sn_client: Any
) -> None:
    """Asking for more than 10000 rows (or for no limit) returns 10000, with no error."""
    sn = sn_client(sandbox_factory(sla_records=10050))
    for params in ({"sysparm_limit": 20000}, {}):
        response = sn.get("/api/now/table/task_sla", sysparm_fields="sys_id", **params)
        assert response.status_code == 200
        assert len(response.json()["result"]) == 10000
        assert response.headers["X-Total-Count"] == "10050"


def test_a_keyset_tail_reads_like_the_list_it_does_not_copy() -> None:
    """The rows after a keyset cursor (`_Tail`): length, indexing, slicing and iteration as the
    copied tail would give them."""
    from sandbox.servicenow.listing import _Tail

    rows = [{"sys_id": str(i)} for i in range(10)]
    tail = _Tail(rows, 4)
    assert len(tail) == 6 and list(tail) == rows[4:]
    assert tail[0] is rows[4] and tail[-1] is rows[9]
    assert tail[1:3] == rows[5:7] and tail[4:100] == rows[8:]
    assert list(_Tail(rows, 10)) == []
    assert _Tail(rows, 0)[::-1] == rows[::-1] and _Tail(rows, 4)[::-2] == rows[4:][::-2]
