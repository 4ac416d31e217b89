"""Render stored rows as the Table API does for `sysparm_display_value` false | true | all.

- false: values; reference fields `{"link", "value"}` (plain sys_id with
  `sysparm_exclude_reference_link=true`); journal fields read "".
- true: display values (a reference shows its record's display field, a choice its label, a
  journal field its entries); references `{"display_value", "link"}` unless links are excluded.
- all: `{"display_value", "value"}` per field, plus `"link"` on references.
Empty references are "" in every mode, as the real API returns them.
"""

from __future__ import annotations

from typing import Any

from sandbox.servicenow.store import Row, TableStore
from sandbox.servicenow.tables import (
    JOURNAL_FIELDS,
    choice_label,
    display_field,
    reference_table,
)


class RowRenderer:
    """One per request: the options are fixed, the reference lookups cached."""

    def __init__(
        self,
        store: TableStore,
        base_url: str,
        fields: list[str] | None,
        display: str,
        exclude_links: bool,
    ) -> None:
        self.store = store
        self.base = f"{base_url}/api/now/table/"
        self.fields = fields
        self.display = display if display in ("true", "all") else "false"
        self.exclude_links = exclude_links
        self._targets: dict[tuple[str, str], str | None] = {}
        self._known: dict[tuple[str, str], bool] = {}  # (table, field): the table has it

    def render(self, row: Row) -> dict[str, Any]:
        table = row.get("sys_class_name", "")
        names = self.fields if self.fields is not None else list(row)
        out: dict[str, Any] = {}
        for name in names:
            if (self.fields is not None or name.startswith("u_")) and not self._is_field(
                table, name
            ):
                continue  # unknown fields (and a stock instance's absent `u_` ones) are left out
            out[name] = self._field(table, row, name)
        return out

    def _is_field(self, table: str, name: str) -> bool:
        key = (table, name)
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self.store.is_field(table, name)
        return known

    def _target(self, table: str, path: str) -> str | None:
        """The table a (dot-walked) field references, or None for a plain field."""
        key = (table, path)
        if key not in self._targets:
            current: str | None = table
            for name in path.split("."):
                current = reference_table(current, name) if current else None
            self._targets[key] = current
        return self._targets[key]

    def _field(self, table: str, row: Row, path: str) -> Any:
        value = row.get(path, "") if "." not in path else self.store.get_path(row, path)
        leaf = path.rsplit(".", 1)[-1]
        if leaf in JOURNAL_FIELDS and "." not in path:
            return self._journal(row, leaf, value)
        target = self._target(table, path)
        if self.display == "false":
            if target is None or not value or self.exclude_links:
                return value
            return {"link": self.base + target + "/" + value, "value": value}
        shown = self._display(table, path, leaf, value, target)
        if self.display == "true":
            if target is None or not value or self.exclude_links:
                return shown
            return {"display_value": shown, "link": self.base + target + "/" + value}
        result: dict[str, str] = {"display_value": shown, "value": value}
        if target is not None and value and not self.exclude_links:
            result["link"] = self.base + target + "/" + value
        return result

    def _display(self, table: str, path: str, leaf: str, value: str, target: str | None) -> str:
        if target is not None:
            found = self.store.by_id.get(value)
            return found[1].get(display_field(found[0]), "") if found else ""
        owner = table if "." not in path else self._target(table, path.rsplit(".", 1)[0]) or table
        return choice_label(owner, leaf, value)

    def _user_name(self, user_name: str) -> str:
        """The display name journal headers show for a `user_name`."""
        if user_name == "admin":
            return "System Administrator"
        for user in self.store.tables.get("sys_user", {}).values():
            if user.get("user_name") == user_name:
                return user.get("name") or user_name
        return user_name

    def _journal(self, row: Row, leaf: str, value: str) -> Any:
        if self.display == "false":
            return value
        entries = [e for e in self.store.journal(row["sys_id"]) if e["element"] == leaf]
        label = "Work notes" if leaf == "work_notes" else "Additional comments"
        text = "".join(
            f"{e['sys_created_on']} - {self._user_name(e['sys_created_by'])} ({label})\n"
            f"{e['value']}\n\n"
            for e in reversed(entries)
        )
        return text if self.display == "true" else {"display_value": text, "value": ""}
