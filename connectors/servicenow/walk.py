"""The components of services: a breadth-first walk of `cmdb_rel_ci` "Depends on::Used by".

From the services, each level asks for the relations whose parent is in the current frontier
(`parentIN...^type=<type>`, in batches), up to `relation_depth` levels. A CI already reached is
not walked again, so dependency cycles end. Each reached CI remembers the services whose walk
reached it (`slm_service_ids`) and its children inside the walk (`slm_depends_on`), and the
relations that lead to it (so a CI that cannot be read is reported by the relation naming it).
Relation rows the walk cannot use (no sys_id or stamp, no parent or child) are kept in
`errors`, each naming the relation's sys_id and the services it affects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from connectors.base import ReadError
from connectors.errors import ConnectorError
from connectors.servicenow import query
from connectors.servicenow.client import SYSTEM, Record, TableClient
from connectors.servicenow.guard import Guard


@dataclass
class Reached:
    """A CI the walk reached: which services lead to it, which CIs it depends on."""

    services: dict[str, None] = field(default_factory=dict)  # ordered set
    depends_on: dict[str, None] = field(default_factory=dict)
    relations: dict[str, None] = field(default_factory=dict)  # relation sys_ids naming it


@dataclass(frozen=True)
class Relation:
    """One relation row: its sys_id, parent and child (either may be empty)."""

    sys_id: str
    parent: str
    child: str


@dataclass
class DependencyWalk:
    """Walks relations of one type from services down to `depth` levels."""

    client: TableClient
    guard: Guard
    relations_table: str
    type_id: str
    depth: int
    batch_size: int = 100
    errors: list[ReadError] = field(default_factory=list)

    def walk(self, service_ids: Sequence[str]) -> dict[str, Reached]:
        """Every CI reached from `service_ids`, by sys_id (services themselves excluded)."""
        self.errors = []
        services = set(service_ids)
        edges: dict[str, dict[str, None]] = {}
        naming: dict[str, dict[str, None]] = {}  # child -> relation sys_ids
        unusable: list[Relation] = []
        seen = set(services)
        frontier = list(service_ids)
        for _ in range(self.depth):
            next_frontier: list[str] = []
            for relation in self._relations(frontier):
                parent, child = relation.parent, relation.child
                if not parent or not child:
                    unusable.append(relation)
                    continue
                if child in services:
                    continue  # a relation back to a service: services are not components
                edges.setdefault(parent, {})[child] = None
                naming.setdefault(child, {})[relation.sys_id] = None
                if child not in seen:
                    seen.add(child)
                    next_frontier.append(child)
            frontier = next_frontier
            if not frontier:
                break
        reached = self._reached(service_ids, edges)
        for ci, node in reached.items():
            node.relations = naming.get(ci, {})
        self._report(unusable, reached, services)
        return reached

    def _report(
        self, unusable: list[Relation], reached: dict[str, Reached], services: set[str]
    ) -> None:
        for relation in unusable:
            parent = relation.parent
            affected: tuple[str, ...] = (parent,) if parent in services else ()
            if parent in reached:
                affected = tuple(reached[parent].services)
            reason = (
                f"relation from {parent or '(empty parent)'} names no child CI (empty, or the "
                "reference is hidden by ACLs); fix the relation or the integration user's roles"
            )
            self.errors.append(ReadError(self.relations_table, relation.sys_id, reason, affected))

    def _reached(
        self, service_ids: Sequence[str], edges: dict[str, dict[str, None]]
    ) -> dict[str, Reached]:
        reached: dict[str, Reached] = {}
        for service in service_ids:
            level, visited = [service], {service}
            for _ in range(self.depth):
                level = [c for p in level for c in edges.get(p, {}) if c not in visited]
                visited.update(level)
                for child in level:
                    reached.setdefault(child, Reached()).services[service] = None
        for ci, node in reached.items():
            node.depends_on = {c: None for c in edges.get(ci, {}) if c in reached}
        return reached

    def relations_of(self, parents: Sequence[str]) -> list[Relation]:
        """The relations of the walked type whose parent is one of `parents` (batched)."""
        return self._relations(parents)

    def _relations(self, parents: Sequence[str]) -> list[Relation]:
        relations: list[Relation] = []
        for start in range(0, len(parents), self.batch_size):
            batch = parents[start : start + self.batch_size]
            condition = query.conjoin(
                [query.sys_ids_in("parent", batch), f"type={query.sys_id(self.type_id)}"]
            )
            relations += _relations(self._read_all(condition))
        return relations

    def _read_all(self, condition: str) -> Iterable[Record]:
        """All relation rows matching `condition`, by keyset pages (a hub CI has many)."""
        last: tuple[str, str] | None = None
        while True:
            after = query.after(*last) if last else ""
            result = self.guard.call(
                lambda a=after: self.client.list(  # type: ignore[misc]
                    self.relations_table,
                    query=query.ordered(query.conjoin([condition, a])),
                    fields=("sys_id", "sys_updated_on", "parent", "child", "type"),
                    limit=1000,
                ),
                what=f"table {self.relations_table}",
            )
            rows = [r for r in result.records if r.get("sys_id") and r.get("sys_updated_on")]
            for row in result.records:
                if not (row.get("sys_id") and row.get("sys_updated_on")):
                    reason = "no sys_id or sys_updated_on: the integration user cannot read them"
                    sys_id = str(row.get("sys_id") or "(no sys_id)")
                    self.errors.append(ReadError(self.relations_table, sys_id, reason))
            if not rows:
                return
            yield from rows
            last = (rows[-1]["sys_updated_on"], rows[-1]["sys_id"])


def _relations(rows: Iterable[Record]) -> list[Relation]:
    def text(value: object) -> str:
        return value if isinstance(value, str) else ""

    return [
        Relation(text(row.get("sys_id")), text(row.get("parent")), text(row.get("child")))
        for row in rows
    ]


def relation_type_id(client: TableClient, guard: Guard, name: str) -> str:
    """The sys_id of the relation type named `name` (e.g. "Depends on::Used by")."""
    result = guard.call(
        lambda: client.list(
            "cmdb_rel_type",
            query=query.equals("name", name),
            fields=("sys_id", "name"),
            limit=2,
        ),
        what="table cmdb_rel_type",
    )
    if not result.records:
        raise ConnectorError(
            f"{SYSTEM}: no cmdb_rel_type named {name!r}",
            system=SYSTEM,
            hint="set servicenow.relation_type to a relation type of your CMDB",
        )
    return str(result.records[0]["sys_id"])
