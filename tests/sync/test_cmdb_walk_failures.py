"""A CMDB walk that fails or is given up midway loses nothing, end to end (stand-in, real HTTP).

A CI counts as walked (its relations read) only once its relations are in the graph, and a cold
walk makes the mirror warm only once it is whole: a relation read that fails midway (a 403, or
server errors past the retries) leaves the rest of the walk due, for the next pull of the same
process and for a restarted one going on from the state the failed pull saved. A walk still
running when the pull ends early (another stream failed, a stop) is given up at its next
request, and the pull returns, and saves the kept state, only once the walk stopped.

Counted per request and compared with a reference process's components (never time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors import ConnectorError, Page, Stream, cancel
from mapping import load_mappings
from sandbox import Sandbox
from sync.pull import pull
from tests.sync.test_cmdb_restart import Process, _components
from tests.sync.test_incremental_cmdb import BASE, FIXED_NOW, Clock

pytestmark = pytest.mark.usefixtures("no_retry_waits")

RELATIONS = "cmdb_rel_ci"
# The instance refuses the relations table (an ACL changed mid-walk) / answers 5xx every
# time (more often than the retries allow); from one read of the walk on, see `_walk_fails_at`.
DENIED = {"servicenow_denied_tables": [RELATIONS]}
SERVER_ERRORS = {"faults": f"5xx=1,only=/api/now/table/{RELATIONS}"}


@pytest.fixture
def site() -> Iterator[Sandbox]:
    with Sandbox(seed=3, services=8, sla_records=100, now=FIXED_NOW) as running:
        yield running


def _walk_reads(process: Process) -> list[str]:
    """The relation reads of the walk (`parentIN`), each once (retries are the same read)."""
    reads = [q for t, q in process.counting.queries if t == RELATIONS and "parentIN" in q]
    return list(dict.fromkeys(reads))


def _on_walk_read(process: Process, before: Callable[[int], None]) -> None:
    """Call `before(n)` ahead of each attempt of the process's n-th relation read of the walk
    (`parentIN`)."""
    inner = process.counting.list
    reads: dict[str, None] = {}

    def listed(table: str, **kw: Any) -> Any:
        if table == RELATIONS and "parentIN" in kw["query"]:
            reads[kw["query"]] = None
            before(list(reads).index(kw["query"]) + 1)
        return inner(table, **kw)

    process.counting.list = listed  # type: ignore[method-assign]


def _walk_fails_at(process: Process, site: Sandbox, nth: int, fault: dict[str, Any]) -> None:
    """The stand-in answers the process's `nth` relation read of the walk (every attempt of
    it) and every relation read after it with `fault` (until `_clear`)."""

    armed = [True]  # once: the next pulls read without trouble (after `_clear`)

    def before(count: int) -> None:
        if count == nth and armed:
            armed.clear()
            site.knobs.update(fault)

    _on_walk_read(process, before)


def _clear(site: Sandbox) -> None:
    site.knobs.update({"servicenow_denied_tables": [], "faults": ""})


def _reference(site: Sandbox, tmp_path: Path, minutes: int) -> dict[str, Any]:
    """The components a process that walks cold without trouble stores."""
    reference = Process(site, f"sqlite:///{tmp_path / 'reference.db'}", Clock())
    reference.cycle(minutes)
    want = _components(reference.store)
    reference.close()
    return want


def _new_branch(site: Sandbox) -> tuple[str, str]:
    """A relation from a service to a new CI and from that to another new one (two levels of
    walk), added after the first cycle: the two CIs."""
    app = site.servicenow
    app.clock = BASE + timedelta(minutes=1)
    type_id = app.store.rows(RELATIONS)[0]["type"]
    service = site.estate.services[0].sys_id
    upper = app.insert("cmdb_ci_server", name="branch-app-host")["sys_id"]
    lower = app.insert("cmdb_ci_server", name="branch-db-host")["sys_id"]
    app.insert(RELATIONS, parent=service, child=upper, type=type_id)
    app.insert(RELATIONS, parent=upper, child=lower, type=type_id)
    return str(upper), str(lower)


@pytest.mark.parametrize("fault", [DENIED, SERVER_ERRORS], ids=["403", "5xx"])
@pytest.mark.parametrize("then", ["same process", "restarted"])
def test_a_cold_walk_failing_midway_leaves_no_component_out_of_the_next_pulls(
    site: Sandbox,
    tmp_path: Path,
    fault: dict[str, Any],
    then: str,
) -> None:
    """The second level of the cold walk fails: the pull fails, and the next pull, of the
    same process or of a restarted one on the same store, walks again and stores every
    component a walk without trouble stores; so does the pull after it."""
    want = _reference(site, tmp_path, 0)
    assert want
    url = f"sqlite:///{tmp_path / 'state.db'}"
    clock = Clock()
    first = Process(site, url, clock)
    _walk_fails_at(first, site, 2, fault)
    with pytest.raises(ConnectorError):
        first.cycle(0)
    _clear(site)
    assert len(_walk_reads(first)) == 2  # failed where it was meant to
    assert not _components(first.store)

    if then == "restarted":
        first.close()
        process = Process(site, url, clock)
    else:
        process = first
    process.counting.reset()
    process.cycle(1)
    assert _walk_reads(process), "the failed walk was not made again"
    assert _components(process.store) == want
    process.cycle(2)
    assert _components(process.store) == want
    process.close()


@pytest.mark.parametrize("then", ["same process", "restarted"])
def test_an_incremental_walk_failing_midway_reads_the_rest_next_time(
    site: Sandbox,
    tmp_path: Path,
    then: str,
) -> None:
    """A relation to a new CI that has a relation of its own: reading the new CI's relations
    fails (403). The next pull, in this process or a restarted one, reads them and stores both
    new CIs, as a process walking cold would."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    upper, lower = _new_branch(site)
    want = _reference(site, tmp_path, 2)
    assert {upper, lower} <= set(want)
    first.counting.reset()
    _walk_fails_at(first, site, 1, DENIED)
    with pytest.raises(ConnectorError):
        first.cycle(2)
    _clear(site)
    assert [q for q in _walk_reads(first) if f"parentIN{upper}^" in q]

    if then == "restarted":
        first.close()
        process = Process(site, url, clock)
    else:
        process = first
    process.counting.reset()
    process.cycle(3)
    reads = _walk_reads(process)
    assert any(f"parentIN{upper}^" in q for q in reads), reads  # only the rest of the walk
    assert all(f"parentIN{upper}^" in q or f"parentIN{lower}^" in q for q in reads), reads
    assert _components(process.store) == want
    process.close()


class _Stop(Exception):
    """A stop between pages (the engine raises its own from `on_page`)."""


@pytest.mark.parametrize(
    "ended_by", ["another stream fails", "a stop between pages", "a stop while no page comes"]
)
def test_a_walk_running_when_the_pull_ends_stops_before_the_pull_returns(
    site: Sandbox,
    tmp_path: Path,
    ended_by: str,
) -> None:
    """The walk's relation read of a new CI is in flight when the pull ends early: the
    satisfaction answers are refused (403), or a stop comes with the first SLA page, or while
    the pull waits for the walk's first page (`on_wait`). The walk
    sends no further request, the pull returns (and saves the kept state) only once the
    walk's reader thread ended, the state saved is the one the pull leaves (nothing changes it
    after), and a restarted process going on from it stores every component."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    clock = Clock()
    first = Process(site, url, clock)
    first.cycle(0)
    upper, lower = _new_branch(site)
    want = _reference(site, tmp_path, 2)
    first.counting.reset()

    service = site.estate.services[0].sys_id  # the new relation's parent
    given_up: list[bool] = []
    in_flight = threading.Event()

    def in_flight_until_given_up(count: int) -> None:
        if count == 1:  # the new CI's relations: held until the pull gives its read up
            in_flight.set()
            flag = cancel.current()
            given_up.append(flag is not None and flag.wait(timeout=60))

    _on_walk_read(first, in_flight_until_given_up)
    saves: list[tuple[list[str], dict[str, Any]]] = []
    save = first.keeper.save_after_failure

    def watched_save(*args: Any) -> None:
        readers = [t.name for t in threading.enumerate() if t.name.startswith("pull-read-ahead")]
        saves.append((readers, first.source.kept_state()))
        save(*args)

    first.keeper.save_after_failure = watched_save  # type: ignore[method-assign, assignment]

    # the pull ends only once the walk's read is in flight (the stop or the 403 comes while
    # the walk runs, not before it began)
    def stop_at_sla_page(stream: Stream, records: int) -> None:
        if stream is Stream.SLA_RECORDS:
            in_flight.wait(timeout=60)
            raise _Stop

    read = first.source.read

    def csat_once_the_walk_runs(stream: Stream, **kw: Any) -> Iterator[Page]:
        if stream is Stream.CSAT:
            in_flight.wait(timeout=60)
        yield from read(stream, **kw)

    def stop_once_the_walk_runs() -> None:
        if in_flight.is_set():
            raise _Stop

    on_page = on_wait = None
    if ended_by == "another stream fails":
        site.knobs.update({"servicenow_denied_tables": ["asmt_metric_result"]})
        first.source.read = csat_once_the_walk_runs  # type: ignore[method-assign]
    elif ended_by == "a stop between pages":
        on_page = stop_at_sla_page
    else:
        on_wait = stop_once_the_walk_runs
    until = BASE + timedelta(minutes=2)
    with pytest.raises((ConnectorError, _Stop)):
        pull(first.source, load_mappings("servicenow"), first.store, until=until,
             on_page=on_page, keeper=first.keeper, on_wait=on_wait)  # fmt: skip
    _clear(site)

    assert given_up == [True]
    assert len(_walk_reads(first)) == 1  # nothing sent after it was given up
    assert not [t for t in threading.enumerate() if t.name.startswith("pull-read-ahead")]
    assert len(saves) == 1
    readers, saved = saves[0]
    assert readers == []  # saved only once every reader ended
    assert first.source.kept_state() == saved  # nothing changed it after
    # the new CI's relations were not read to their end (the read of the page after the one
    # in flight was not sent): it is not walked, and none of its relations is kept
    assert not {upper, lower} & set(saved["expanded"])
    assert [service, upper] in saved["edge"].values()
    assert not [edge for edge in saved["edge"].values() if edge[0] == upper]
    first.close()

    second = Process(site, url, clock)
    second.cycle(3)
    reads = _walk_reads(second)
    assert [q for q in reads if f"parentIN{upper}^" in q], reads
    assert [q for q in reads if f"parentIN{lower}^" in q], reads
    assert _components(second.store) == want
    second.close()
