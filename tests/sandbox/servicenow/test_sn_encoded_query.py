"""Encoded queries (sysparm_query): each operator, ^OR, ^NQ, dot-walk, ordering, escapes."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import Sandbox


def _count(sn: Any, table: str, query: str) -> int:
    response = sn.get(f"/api/now/table/{table}", sysparm_query=query, sysparm_limit=1,
                      sysparm_fields="sys_id")  # fmt: skip
    assert response.status_code == 200
    return int(response.headers["X-Total-Count"])


def _incidents(sandbox: Sandbox, **where: str) -> int:
    return sum(
        all(getattr(i, key) == value for key, value in where.items())
        for i in sandbox.estate.incidents
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("priority=1", lambda p: p == "1"),
        ("priority!=3", lambda p: p != "3"),
        ("priority>2", lambda p: int(p) > 2),
        ("priority>=2", lambda p: int(p) >= 2),
        ("priority<2", lambda p: int(p) < 2),
        ("priority<=2", lambda p: int(p) <= 2),
        ("priorityIN1,4", lambda p: p in ("1", "4")),
        ("priorityNOT IN1,4", lambda p: p not in ("1", "4")),
        ("priority=1^ORpriority=4", lambda p: p in ("1", "4")),
    ],
)
def test_comparison_operators_select_the_matching_incidents(
    sn: Any, sandbox: Sandbox, query: str, expected: Any
) -> None:
    """Each comparison operator selects exactly the incidents whose priority satisfies it."""
    want = sum(expected(i.priority) for i in sandbox.estate.incidents)
    assert _count(sn, "incident", query) == want


def test_string_operators(sn: Any, sandbox: Sandbox) -> None:
    """STARTSWITH, CONTAINS / LIKE match text ignoring case."""
    names = [s.name for s in sandbox.estate.services]
    assert _count(
        sn, "cmdb_ci_service", "sys_class_name!=service_offering^nameSTARTSWITHpay"
    ) == sum(n.lower().startswith("pay") for n in names)
    assert _count(
        sn, "cmdb_ci_service", "sys_class_name!=service_offering^nameCONTAINSservice"
    ) == sum("service" in n.lower() for n in names)
    assert _count(
        sn, "cmdb_ci_service", "sys_class_name!=service_offering^nameLIKEservice"
    ) == _count(sn, "cmdb_ci_service", "sys_class_name!=service_offering^nameCONTAINSservice")


def test_empty_operators(sn: Any, sandbox: Sandbox) -> None:
    """ISEMPTY finds the service without owner; ISNOTEMPTY finds all the others.
    (service_offering extends cmdb_ci_service, so its rows are listed too unless filtered out.)"""
    only = "sys_class_name!=service_offering^"
    rows = sn.rows(
        "cmdb_ci_service", sysparm_query=only + "owned_byISEMPTY", sysparm_fields="sys_id"
    )
    assert [r["sys_id"] for r in rows] == [sandbox.estate.deliberate["service_without_owner"]]
    assert (
        _count(sn, "cmdb_ci_service", only + "owned_byISNOTEMPTY")
        == len(sandbox.estate.services) - 1
    )


def test_and_binds_looser_than_or_and_nq_starts_a_new_query(sn: Any, sandbox: Sandbox) -> None:
    """`a^ORb^c` is (a OR b) AND c; `x^NQy` is x OR y."""
    closed_p1_or_p2 = sum(
        i.priority in ("1", "2") and i.state == "7" for i in sandbox.estate.incidents
    )
    assert _count(sn, "incident", "priority=1^ORpriority=2^state=7") == closed_p1_or_p2
    either = sum(
        (i.priority == "1" and i.state == "7") or i.priority == "4"
        for i in sandbox.estate.incidents
    )
    assert _count(sn, "incident", "priority=1^state=7^NQpriority=4") == either


def test_dot_walked_condition_follows_references(sn: Any, sandbox: Sandbox) -> None:
    """`task.business_service=<id>` on task_sla selects the SLA records of that service."""
    service = sandbox.estate.services[0].sys_id
    incidents = {i.sys_id for i in sandbox.estate.incidents if i.business_service == service}
    want = sum(r.task in incidents for r in sandbox.estate.sla_records)
    assert _count(sn, "task_sla", f"task.business_service={service}") == want


def test_invalid_field_is_ignored(sn: Any, sandbox: Sandbox) -> None:
    """A condition on a field the table lacks is dropped, so it matches more, not nothing."""
    total = len(sandbox.estate.incidents)
    assert _count(sn, "incident", "u_no_such_field=1") == total
    assert _count(sn, "incident", "u_no_such_field=1^priority=1") == _incidents(
        sandbox, priority="1"
    )


def test_orderbydesc_sorts_descending(sn: Any) -> None:
    """ORDERBYDESC<field> returns rows in descending order of that field."""
    rows = sn.rows("incident", sysparm_query="ORDERBYDESCopened_at", sysparm_limit=50,
                   sysparm_fields="opened_at")  # fmt: skip
    stamps = [r["opened_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)


def test_date_comparison_and_date_generate(sn: Any, sandbox: Sandbox) -> None:
    """Dates compare as text; gs.dateGenerate(day, time) is accepted as a value."""
    want = sum(i.opened_at.strftime("%Y-%m-%d %H:%M:%S") >= "2025-01-01 10:00:00"
               for i in sandbox.estate.incidents)  # fmt: skip
    assert _count(sn, "incident", "opened_at>=2025-01-01 10:00:00") == want
    generated = "opened_at>=javascript:gs.dateGenerate('2025-01-01','10:00:00')"
    assert _count(sn, "incident", generated) == want


def test_double_caret_is_a_literal_caret(sn: Any, sandbox: Sandbox) -> None:
    """`^^` inside a value stands for one `^`: the service named with a caret is found."""
    special = sandbox.estate.service(sandbox.estate.deliberate["service_special_name"])
    assert "^" in special.name
    rows = sn.rows("cmdb_ci_service", sysparm_query="name=" + special.name.replace("^", "^^"),
                   sysparm_fields="sys_id,name")  # fmt: skip
    assert rows == [{"sys_id": special.sys_id, "name": special.name}]


def test_listing_a_parent_table_includes_extending_tables(sn: Any, sandbox: Sandbox) -> None:
    """As on a real instance, cmdb_ci_service also lists the CSDM business and technical
    services and service_offering rows (they extend cmdb_ci_service), and task lists incidents
    and problems."""
    classes = {
        r["sys_class_name"] for r in sn.rows("cmdb_ci_service", sysparm_fields="sys_class_name")
    }
    assert classes == {
        "cmdb_ci_service", "cmdb_ci_service_business", "cmdb_ci_service_technical",
        "service_offering",
    }  # fmt: skip
    total = len(sandbox.estate.incidents) + len(sandbox.estate.problems)
    assert _count(sn, "task", "sys_class_nameINincident,problem") == total


@pytest.mark.parametrize(
    "query",
    [
        "priorityIN1,4^ORDERBYsys_id",
        "priorityIN1,4",
        "priority=1^NQpriority=4^ORDERBYDESCsys_updated_on",
        "PRIORITYin1",  # not an operator: a scan, not the index
        "priority=1^state=7^ORDERBYnumber",
        "priorityIN1,4^ORpriority=2^ORDERBYsys_updated_on^ORDERBYsys_id",
        "sys_idIN{ids}^ORDERBYsys_id",
        "priority!=1^ORDERBYsys_id",  # the primary key's order
        "sys_id>{mid}^ORDERBYsys_id",  # read_by_id's cursor: a seek along it
        "stateISNOTEMPTY^sys_id>{mid}^ORDERBYsys_id^NQpriority=2^sys_id>{mid}",
    ],
)
def test_indexed_lookups_answer_as_a_scan_would(sandbox: Sandbox, query: str) -> None:
    """`field=X` and `fieldIN...` are answered from an index (as an instance's indexed
    columns are): the same rows, in the same order, as filtering every row of the table."""
    from sandbox.servicenow.listing import _sort, select
    from sandbox.servicenow.query import compile_filter, parse_query

    store = sandbox.servicenow.store
    ids = ",".join(r["sys_id"] for r in store.rows("incident")[::7])
    mid = sorted(r["sys_id"] for r in store.rows("incident"))[len(store.rows("incident")) // 2]
    text = query.format(ids=ids, mid=mid)
    page = select(store, "incident", text, 10000, 0, count=True)
    parsed = parse_query(text)
    matches = compile_filter(parsed, lambda n: store.is_field("incident", n), store.get_path)
    everything = [r for r in store.rows("incident") if matches is None or matches(r)]
    order = [(n, d) for n, d in parsed.order_by if store.is_field("incident", n)]
    if [n for n, _ in order] == ["sys_updated_on"] or order == [
        ("sys_updated_on", False), ("sys_id", False)
    ]:  # fmt: skip
        everything = sorted(everything, key=lambda r: (r["sys_updated_on"], r["sys_id"]))
        everything = everything[::-1] if order[0][1] else everything
    elif order:
        everything = _sort(store, everything, order)
    assert [r["sys_id"] for r in page.rows] == [r["sys_id"] for r in everything]
    assert page.total == len(everything) and everything


def test_paging_along_sys_id_reads_every_row_once_in_order(sandbox: Sandbox) -> None:
    """Pages of 7 without a count, each after the last sys_id (`sys_id>X^ORDERBYsys_id`, as
    read_by_id asks): every matching row once, in sys_id order."""
    from sandbox.servicenow.listing import select

    store = sandbox.servicenow.store
    read: list[str] = []
    while True:
        after = f"^sys_id>{read[-1]}" if read else ""
        page = select(store, "incident", f"priority!=1{after}^ORDERBYsys_id", 7, 0, count=False)
        if not page.rows:
            break
        read += [r["sys_id"] for r in page.rows]
    expected = sorted(r["sys_id"] for r in store.rows("incident") if r.get("priority") != "1")
    assert read == expected and len(expected) > 14


def test_instanceof_nq_and_dot_walk_read_a_task_and_its_children_of_any_class(
    sandbox_factory: Any, sn_client: Any
) -> None:
    """`sys_class_nameINSTANCEOF<table>` is "class is a" (the table or one extending it);
    on `task`, one query in two NQ groups finds marked vtb_tasks and, by a dot-walk through
    `parent`, their unmarked children whatever their class; conditions after an `^NQ` bind
    to its group alone."""
    running = sandbox_factory()
    client = sn_client(running)

    def insert(table: str, **fields: str) -> str:
        response = client.post(f"/api/now/table/{table}", fields)
        assert response.status_code == 201
        return str(response.json()["result"]["sys_id"])

    ours = insert("vtb_task", correlation_display="slm-sync", short_description="review")
    sub = insert("vtb_task", correlation_display="slm-sync", parent=ours)
    incident = insert("incident", parent=ours, short_description="child incident")
    problem = insert("problem", parent=ours, correlation_display="someone else")
    insert("problem", short_description="no parent")
    insert("incident", parent=incident)  # a grandchild: its parent is not ours

    def ids(query: str) -> set[str]:
        rows = client.rows("task", sysparm_query=query, sysparm_fields="sys_id")
        return {row["sys_id"] for row in rows}

    assert ids("sys_class_nameINSTANCEOFvtb_task^correlation_display=slm-sync") == {ours, sub}
    assert ids("sys_class_nameINSTANCEOFtask^parent=" + ours) == {sub, incident, problem}
    assert ids("sys_class_nameINSTANCEOFincident^parent=" + ours) == {incident}
    both = (
        "correlation_display=slm-sync^sys_class_nameINSTANCEOFvtb_task^NQ"
        "parent.correlation_display=slm-sync^correlation_display!=slm-sync"
        "^ORcorrelation_displayISEMPTY^ORDERBYsys_updated_on^ORDERBYsys_id"
    )
    assert ids(both) == {ours, sub, incident, problem}
    # a condition after the NQ narrows its group only: ours still match
    assert ids(both.replace("^ORDERBY", "^sys_class_name=problem^ORDERBY", 1)) == {
        ours, sub, problem,
    }  # fmt: skip
