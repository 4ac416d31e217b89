"""The components of services: a breadth-first walk of `cmdb_rel_ci` "Depends on::Used by".

From the services, each level asks for the relations whose parent is in the current frontier
(`parentIN...^type=<type>`, in batches), up to `relation_depth` levels. A CI already reached is
not walked again, so dependency cycles end. Each reached CI remembers the services whose walk
reached it (`slm_service_ids`) and its children inside the walk (`slm_depends_on`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from connectors.errors import ConnectorError
from connectors.servicenow import query
from connectors.servicenow.client import SYSTEM, Record, TableClient
from connectors.servicenow.guard import Guard


@dataclass
class Reached:
    """A CI the walk reached: which services lead to it, which CIs it depends on."""

    services: dict[str, None] = field(default_factory=dict)  # ordered set
    depends_on: dict[str, None] = field(default_factory=dict)


@dataclass
class DependencyWalk:
    """Walks relations of one type from services down to `depth` levels."""

    client: TableClient
    guard: Guard
    relations_table: str
    type_id: str
    depth: int
    batch_size: int = 100

    def walk(self, service_ids: Sequence[str]) -> dict[str, Reached]:
        """Every CI reached from `service_ids`, by sys_id (services themselves excluded)."""
        services = set(service_ids)
        edges: dict[str, dict[str, None]] = {}
        seen = set(services)
        frontier = list(service_ids)
        for _ in range(self.depth):
            next_frontier: list[str] = []
            for parent, child in self._relations(frontier):
                if child in services:
                    continue  # a relation back to a service: services are not components
                edges.setdefault(parent, {})[child] = None
                if child not in seen:
                    seen.add(child)
                    next_frontier.append(child)
            frontier = next_frontier
            if not frontier:
                break
        return self._reached(service_ids, edges)

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

    def _relations(self, parents: Sequence[str]) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for start in range(0, len(parents), self.batch_size):
            batch = parents[start : start + self.batch_size]
            condition = query.conjoin(
                [query.sys_ids_in("parent", batch), f"type={query.sys_id(self.type_id)}"]
            )
            pairs += _pairs(self._read_all(condition))
        return pairs

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
            if not rows:
                return
            yield from rows
            last = (rows[-1]["sys_updated_on"], rows[-1]["sys_id"])


def _pairs(rows: Iterable[Record]) -> list[tuple[str, str]]:
    pairs = []
    for row in rows:
        parent, child = row.get("parent"), row.get("child")
        if isinstance(parent, str) and isinstance(child, str) and parent and child:
            pairs.append((parent, child))
    return pairs


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
