"""The CMDB as the source last saw it: services, the relation graph the walk uses, reached CIs.

A cold start (or `servicenow.cmdb_rewalk_seconds` later) reads every service and walks
`cmdb_rel_ci` from them (`walk.DependencyWalk`, batched `parentIN`). After that each cycle reads
only what changed since the last one, once per table:

- `cmdb_rel_ci` rows of the walked type updated since the relation cursor: an edge whose parent
  was walked is added or moved; rows whose parent the walk never reached are ignored (if that
  parent becomes reachable later, its relations are read then);
- `sys_audit_delete` rows of `cmdb_rel_ci` and the service classes created since the deletion
  cursor: deleted relations and services (an instance audits deletions of non-`sys_` tables by
  default; deleting a CI deletes its relations, which are audited too). Without read access
  to `sys_audit_delete` the deletion read is turned off with one warning and the periodic full
  walk finds deletions instead;
- the components table (`cmdb_ci`) rows updated since the CI cursor: changed attributes of CIs
  the walk reached.

Then the walk continues only from CIs that became reachable and whose relations were never read
(the services a new or moved edge leads to); nothing else is read again. Services come from the
services stream's own incremental pages (`observe_services`).

The mirror is kept in memory and, through the sync layer, in the state store (`state`,
`restore`: services, relation edges, which CIs had their relations read, reached CI rows, the
cursors and when the last full walk was): a restarted daemon or a `sync --once` run goes on
from where the last cycle stopped, and the full walk is due `cmdb_rewalk_seconds` after the last
one whichever process made it (the clock is wall time for that reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Cursor, ReadError, SourceState
from connectors.errors import AuthError
from connectors.servicenow import query
from connectors.servicenow.batch import ListRequest
from connectors.servicenow.client import Record, TableClient, log
from connectors.servicenow.guard import Guard
from connectors.servicenow.lookup import BatchLookup
from connectors.servicenow.paging import KeysetPager, overlapped
from connectors.servicenow.streams import StreamSpec
from connectors.servicenow.walk import DependencyWalk, Reached, Relation

AUDIT_DELETE_TABLE = "sys_audit_delete"
AUDIT_FIELDS = ("sys_id", "sys_created_on", "tablename", "documentkey")


@dataclass
class Graph:
    """Relation edges of walked parents; which CIs had their relations read."""

    edges: dict[str, tuple[str, str]] = field(default_factory=dict)  # relation -> (parent, child)
    children: dict[str, dict[str, str]] = field(default_factory=dict)  # parent -> child -> rel
    expanded: set[str] = field(default_factory=set)
    unusable: dict[str, Relation] = field(default_factory=dict)

    def add(self, relation: Relation) -> None:
        """Take a relation row as it is now (moved or new), if its parent was walked."""
        self.remove(relation.sys_id)
        if not relation.parent or relation.parent not in self.expanded:
            return
        if not relation.child:
            self.unusable[relation.sys_id] = relation
            return
        self.edges[relation.sys_id] = (relation.parent, relation.child)
        self.children.setdefault(relation.parent, {})[relation.child] = relation.sys_id

    def remove(self, relation_id: str) -> bool:
        """Forget a relation (deleted, or about to be replaced); whether it was known."""
        self.unusable.pop(relation_id, None)
        old = self.edges.pop(relation_id, None)
        if old is None:
            return False
        parent, child = old
        siblings = self.children.get(parent, {})
        if siblings.get(child) == relation_id:
            del siblings[child]
            # another relation may still link the two
            for other, (p, c) in self.edges.items():
                if p == parent and c == child:
                    siblings[child] = other
                    break
        return True

    def levels(self, services: Iterable[str], depth: int) -> dict[str, int]:
        """Each node's distance from the nearest service, up to `depth` (services: 0)."""
        roots = set(services)
        level = {s: 0 for s in roots}
        frontier = list(roots)
        for distance in range(1, depth + 1):
            next_frontier = []
            for parent in frontier:
                for child in self.children.get(parent, {}):
                    if child not in level and child not in roots:
                        level[child] = distance
                        next_frontier.append(child)
            frontier = next_frontier
        return level

    def reached(self, services: Sequence[str], depth: int) -> dict[str, Reached]:
        """The walk's answer from the kept edges: CIs per service, children, naming relations."""
        roots = set(services)
        reached: dict[str, Reached] = {}
        for service in services:
            level, visited = [service], {service}
            for _ in range(depth):
                level = [
                    c
                    for p in level
                    for c in self.children.get(p, {})
                    if c not in visited and c not in roots
                ]
                visited.update(level)
                for child in level:
                    reached.setdefault(child, Reached()).services[service] = None
        for ci, node in reached.items():
            node.depends_on = {c: None for c in self.children.get(ci, {}) if c in reached}
        for relation, (_, child) in self.edges.items():
            if child in reached:
                reached[child].relations[relation] = None
        return reached


@dataclass
class CmdbMirror:
    """Services, relation graph and reached CI rows, kept current with incremental reads."""

    client: TableClient
    guard: Guard
    relations_table: str
    components: StreamSpec
    depth: int
    batch_size: int
    page_size: int
    overlap_seconds: int
    rewalk_seconds: int
    service_classes: tuple[str, ...] = ()  # whose deletions drop a service from the walk
    clock: Callable[[], float] = time.time  # wall time: the last full walk outlives the process
    services: dict[str, Record] = field(default_factory=dict)
    graph: Graph = field(default_factory=Graph)
    cis: dict[str, Record] = field(default_factory=dict)
    errors: list[ReadError] = field(default_factory=list)  # walk problems of the last expand
    warm: bool = False
    audit_readable: bool = True
    _walked_at: float = 0.0
    _refreshed: str = ""  # the bound the state is current for, until `cycle_done`
    _relation_cursor: Cursor | None = None
    _ci_cursor: Cursor | None = None
    _audit_cursor: Cursor | None = None

    def state(self) -> SourceState:
        """What a restarted process needs to go on incrementally (empty while cold)."""
        if not self.warm:
            return {}
        graph = self.graph
        meta = {
            "walked_at": self._walked_at,
            "audit_readable": self.audit_readable,
            "relation_cursor": _cursor_list(self._relation_cursor),
            "ci_cursor": _cursor_list(self._ci_cursor),
            "audit_cursor": _cursor_list(self._audit_cursor),
        }
        return {
            "meta": {"cmdb": meta},
            "service": dict(self.services),
            "ci": dict(self.cis),
            "edge": {r: [p, c] for r, (p, c) in graph.edges.items()},
            "unusable": {r: [u.parent, u.child] for r, u in graph.unusable.items()},
            "expanded": dict.fromkeys(graph.expanded, 1),
        }

    def restore(self, state: SourceState) -> bool:
        """Take a saved `state`; False (and still cold) when it holds no warm mirror."""
        meta = state.get("meta", {}).get("cmdb")
        if not isinstance(meta, dict):
            return False
        graph = Graph(expanded=set(state.get("expanded", {})))
        for relation, (parent, child) in state.get("edge", {}).items():
            graph.edges[relation] = (parent, child)
            graph.children.setdefault(parent, {})[child] = relation
        for relation, (parent, child) in state.get("unusable", {}).items():
            graph.unusable[relation] = Relation(relation, parent, child)
        self.graph = graph
        self.services = dict(state.get("service", {}))
        self.cis = dict(state.get("ci", {}))
        self._walked_at = float(meta["walked_at"])
        self.audit_readable = bool(meta["audit_readable"])
        self._relation_cursor = _cursor_of(meta["relation_cursor"])
        self._ci_cursor = _cursor_of(meta["ci_cursor"])
        self._audit_cursor = _cursor_of(meta["audit_cursor"])
        self._refreshed = ""
        self.warm = True
        return True

    def due(self) -> bool:
        """Whether the next read must walk from scratch (cold, or the periodic full walk)."""
        if not self.warm:
            return True
        return self.rewalk_seconds > 0 and self.clock() - self._walked_at >= self.rewalk_seconds

    def rebuild(self, services: Sequence[Record], type_id: str, bound: str) -> None:
        """The cold walk: all services, their relations level by level, the reached CIs."""
        started = self.clock()
        self.warm = False  # until the walk is whole: a failed one leaves the mirror cold (due)
        self.services = {str(s["sys_id"]): s for s in services}
        self.graph = Graph()
        self.cis = {}
        start = Cursor(bound)
        self._relation_cursor = self._ci_cursor = self._audit_cursor = start
        self.expand(type_id)
        self._walked_at = started
        self.warm = True
        self._refreshed = bound

    def cycle_done(self) -> None:
        """The cycle's last CMDB reader is done: the next one refreshes (same bound or not)."""
        self._refreshed = ""

    def observe_services(self, rows: Iterable[Record]) -> None:
        """Service rows the services stream read (new or changed)."""
        if self.warm:
            for row in rows:
                self.services[str(row["sys_id"])] = row

    def refresh(self, type_id: str, bound: str) -> None:
        """Once per cycle: changed relations, deleted relations, changed CIs; walk on."""
        if not self.warm or self._refreshed == bound:
            return
        for relation in self._changed_relations(type_id, bound):
            self.graph.add(relation)
        for record_id in self._deleted(bound):
            self.graph.remove(record_id)
            self.services.pop(record_id, None)
        self.expand(type_id)
        for row in self._changed_cis(bound):
            if row["sys_id"] in self.cis:
                self.cis[row["sys_id"]] = row
        self._refreshed = bound  # only once whole: a failed refresh is made again (each
        # table from its own cursor, which moved only with what was taken in)

    def expand(self, type_id: str) -> dict[str, Reached]:
        """Read the relations of reachable CIs never walked, until none is left; fetch the
        rows of reached CIs not known yet. The walk's answer."""
        walk = self._walk(type_id)
        while True:
            levels = self.graph.levels(self.services, self.depth)
            frontier = sorted(
                n for n, lvl in levels.items() if lvl < self.depth and n not in self.graph.expanded
            )
            if not frontier:
                break
            relations = walk.relations_of(frontier)  # may fail or stop: nothing taken yet
            # expanded only with its relations in the graph: a walk that failed (or was
            # stopped) midway reads the rest of the frontier next time, in this process or
            # after a restart from the kept state
            self.graph.expanded.update(frontier)
            for relation in relations:
                self.graph.add(relation)
        reached = self.graph.reached(list(self.services), self.depth)
        missing = [ci for ci in reached if ci not in self.cis]
        if missing:
            lookup = BatchLookup(
                self.client,
                self.guard,
                self.components.table,
                self.components.fields,
                self.batch_size,
            )
            self.cis.update(lookup.fetch(missing))
        self.errors = [*walk.errors, *self._unusable(reached)]
        return reached

    def _walk(self, type_id: str) -> DependencyWalk:
        return DependencyWalk(
            self.client, self.guard, self.relations_table, type_id, self.depth, self.batch_size
        )

    def _unusable(self, reached: dict[str, Reached]) -> list[ReadError]:
        errors = []
        for relation in self.graph.unusable.values():
            parent = relation.parent
            affected: tuple[str, ...] = (parent,) if parent in self.services else ()
            if parent in reached:
                affected = tuple(reached[parent].services)
            reason = (
                f"relation from {parent or '(empty parent)'} names no child CI (empty, or the "
                "reference is hidden by ACLs); fix the relation or the integration user's roles"
            )
            errors.append(ReadError(self.relations_table, relation.sys_id, reason, affected))
        return errors

    def _read(
        self, spec: StreamSpec, since: Cursor | None, bound: str, extra: str = ""
    ) -> tuple[list[Record], Cursor | None]:
        """Rows of `spec.table` changed since `since` (with the overlap) and the new cursor."""
        pager = self._pager(spec, since, bound, extra)
        rows: list[Record] = []
        cursor = since
        for page in pager.pages():
            rows += page.records
            cursor = page.cursor
        return rows, cursor

    def _pager(
        self, spec: StreamSpec, since: Cursor | None, bound: str, extra: str = ""
    ) -> KeysetPager:
        return KeysetPager(
            self.client, self.guard, spec, self.page_size, since, bound, extra, self.overlap_seconds
        )

    def first_reads(self, type_id: str, bound: str) -> list[ListRequest]:
        """The first page read of each table `refresh(type_id, bound)` will read (none when
        it will not read, or will walk cold), for a batch call to fetch ahead."""
        if not self.warm or self.due() or self._refreshed == bound:
            return []
        extra = _relation_type(type_id)
        relations = self._pager(self._relation_spec(), self._relation_cursor, bound, extra)
        reads = [relations.first_request()]
        if self.audit_readable:
            start = overlapped(self._audit_cursor, self.overlap_seconds)
            reads.append(self._audit_request(start, bound))
        reads.append(self._pager(self.components, self._ci_cursor, bound).first_request())
        return reads

    def _changed_relations(self, type_id: str, bound: str) -> list[Relation]:
        extra = _relation_type(type_id)
        rows, self._relation_cursor = self._read(
            self._relation_spec(), self._relation_cursor, bound, extra
        )
        return [
            Relation(str(r["sys_id"]), _text(r.get("parent")), _text(r.get("child"))) for r in rows
        ]

    def _relation_spec(self) -> StreamSpec:
        return StreamSpec(self.relations_table, ("sys_id", "sys_updated_on", "parent", "child"))

    def _changed_cis(self, bound: str) -> list[Record]:
        rows, self._ci_cursor = self._read(self.components, self._ci_cursor, bound)
        return rows

    def _deleted(self, bound: str) -> list[str]:
        """documentkeys of `sys_audit_delete` rows of relations and services since the cursor
        (`tablename` is the deleted record's class)."""
        if not self.audit_readable:
            return []
        start = overlapped(self._audit_cursor, self.overlap_seconds)
        deleted: list[str] = []
        last = start
        while True:
            try:
                result = self.guard.list(self.client, self._audit_request(last, bound))
            except AuthError as error:  # 403 on this table (the reads before it worked)
                self.audit_readable = False
                log.warning(
                    "servicenow.audit_delete_unreadable",
                    error=str(error),
                    hint="grant read on sys_audit_delete so deleted relations are seen each "
                    "cycle; until then the full walk every servicenow.cmdb_rewalk_seconds "
                    "finds them",
                )
                return deleted
            rows = [r for r in result.records if r.get("sys_id") and r.get("sys_created_on")]
            if not rows:
                break
            deleted += [_text(r.get("documentkey")) for r in rows]
            last = Cursor(str(rows[-1]["sys_created_on"]), str(rows[-1]["sys_id"]))
        if last is not None and (self._audit_cursor is None or last > self._audit_cursor):
            self._audit_cursor = last
        return deleted

    def _audit_request(self, last: Cursor | None, bound: str) -> ListRequest:
        """The `sys_audit_delete` page after `last`: deletions of relations and services."""
        not_after = "sys_created_on<=" + query.safe_value(bound, field="sys_created_on")
        tables = (self.relations_table, *self.service_classes)
        condition = query.conjoin([query.one_of("tablename", tables), not_after])
        after = ""
        if last is not None:
            after = (
                query.created_after(last.updated, last.id)
                if last.id
                else "sys_created_on>=" + query.safe_value(last.updated, field="sys_created_on")
            )
        ordered = query.ordered_by_creation(query.conjoin([condition, after]))
        return ListRequest(AUDIT_DELETE_TABLE, ordered, AUDIT_FIELDS, self.page_size)


def _relation_type(type_id: str) -> str:
    return f"type={query.sys_id(type_id)}"


def _cursor_list(cursor: Cursor | None) -> list[str] | None:
    return None if cursor is None else [cursor.updated, cursor.id]


def _cursor_of(saved: Any) -> Cursor | None:
    return None if saved is None else Cursor(str(saved[0]), str(saved[1]))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
