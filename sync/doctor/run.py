"""`slm-sync doctor`: can the configured systems be used, and if not, what to fix.

    run_doctor(settings)          every check of the systems `sync.source` / `sync.target` use,
                                  then the state store; never raises for what it finds
    render_checks(checks, out)    a table with ✓ / ✗ / - (not checked) and the fixes
    checks_as_json(checks)        {"ok": bool, "checks": [{system, name, ok, detail, fix}]}

Each check stands alone: a failing one does not stop the others, and when a system cannot be
reached (or refuses the credentials) its remaining checks say "not checked: <reason>". Only
reads are made (one row per table, metadata calls); no ticket or record is written. Secret
values never appear in a detail or fix: every text is masked against the configured secrets.
Requests get at most two attempts, so an unreachable system answers within its timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from config import Settings, env_name
from connectors import RetryPolicy
from sync.doctor.check import Check, CheckList, Verdict, failed, passed
from sync.doctor.jira import jira_checks
from sync.doctor.servicenow import servicenow_checks
from sync.duplicates import recorded
from sync.state import open_store

__all__ = ["Check", "checks_as_json", "render_checks", "run_doctor"]

SystemChecks = Callable[[Settings, RetryPolicy, list[str]], list[Check]]
SYSTEM_CHECKS: dict[str, SystemChecks] = {"servicenow": servicenow_checks, "jira": jira_checks}
DOCTOR_ATTEMPTS = 2
DOCTOR_MAX_SECONDS = 10.0


def run_doctor(settings: Settings) -> list[Check]:
    """Check reach, auth, permissions and configured names of every system in use, and state."""
    secrets = settings.secret_values()  # the state URL's password included
    policy = RetryPolicy(
        max_attempts=min(DOCTOR_ATTEMPTS, settings.http.max_attempts),
        max_seconds=min(DOCTOR_MAX_SECONDS, settings.http.max_retry_seconds),
    )
    checks: list[Check] = []
    for system in dict.fromkeys([settings.sync.source, settings.sync.target]):
        doctor = SYSTEM_CHECKS.get(system)
        if doctor is None:  # a third-party connector plugin: nothing we know how to probe
            other = CheckList(system, secrets)
            other.add("connector", passed(f"no doctor checks for connector plugin {system!r}"))
            checks += other.checks
        else:
            checks += doctor(settings, policy, secrets)
    state = CheckList("state", secrets)
    state.run("state store", lambda: state_store(settings), fix=_state_fix())
    state.run("duplicate tickets", lambda: duplicate_tickets(settings), fix=_duplicate_fix())
    return [*checks, *state.checks]


def duplicate_tickets(settings: Settings) -> Verdict:
    """No idempotency key is carried by several open tickets (as the last cycle's audit saw)."""
    store = open_store(settings.sync.resolved_state_url())
    try:
        found = recorded(store)
    finally:
        store.close()
    if not found:
        return passed("the last duplicate audit found none")
    listed = "; ".join(
        f"{d.key}: {d.survivor.key} + {', '.join(r.key for r in d.others)}" for d in found[:10]
    )
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    return failed(f"{len(found)} key(s) on several open tickets: {listed}{more}", _duplicate_fix())


def _duplicate_fix() -> str:
    return (
        "close the later ticket(s) of each key as duplicates of the first, or set "
        "sync.resolve_duplicates: true to let slm-sync link and close them (nothing is deleted)"
    )


def state_store(settings: Settings) -> Verdict:
    """The state store opens and migrates to the latest schema."""
    shown = settings.sync.redacted_state_url()
    try:
        store = open_store(settings.sync.resolved_state_url())
    except (SQLAlchemyError, OSError) as error:
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return failed(f"{shown} cannot be opened: {first_line}", _state_fix())
    try:
        version = store.schema_version()
    finally:
        store.close()
    return passed(f"{shown} opened, schema version {version}")


def _state_fix() -> str:
    return (
        f"check sync.state_url ({env_name(('sync', 'state_url'))}) or, for the SQLite default, "
        "that sync.data_dir exists and is writable; PostgreSQL: host, database, user and password"
    )


def render_checks(checks: Sequence[Check], console: Console) -> None:
    """The checks as a table: ✓ passed, ✗ failed (with its fix), - not checked."""
    table = Table(show_lines=False, expand=False)
    for column in ("", "system", "check", "found", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        mark = (
            Text("✓", style="green")
            if check.ok
            else Text("-", style="dim")
            if check.skipped
            else Text("✗", style="bold red")
        )
        fix = Text(check.fix or "", style="yellow")
        table.add_row(mark, check.system, check.name, Text(check.detail), fix)
    console.print(table)
    failed_count = sum(1 for check in checks if not check.ok and not check.skipped)
    skipped = sum(1 for check in checks if check.skipped)
    if failed_count or skipped:
        console.print(
            f"[bold red]{failed_count} failed[/], {skipped} not checked, "
            f"{len(checks) - failed_count - skipped} passed"
        )
    else:
        console.print(f"[green]all {len(checks)} checks passed[/]")


def checks_as_json(checks: Sequence[Check]) -> dict[str, Any]:
    """{"ok": every check passed, "checks": [{system, name, ok, detail, fix, skipped}]}."""
    return {
        "ok": all(check.ok for check in checks),
        "checks": [{**asdict(check), "skipped": check.skipped} for check in checks],
    }
