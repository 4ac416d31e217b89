"""Crash suite: `slm-sync sync --once` killed (SIGKILL) at each write boundary, then restarted.

For every boundary of `connectors.crashpoints.BOUNDARIES` and both targets (Jira Cloud;
ServiceNow with ServiceNow also the source), the armed process must die by SIGKILL; unarmed runs
then finish the job. Afterwards the target holds exactly one ticket per planned key (the keys of
`slm-sync plan --json` on a fresh state), every sub-task hangs under the ticket of its own
parent key, and the records mirror holds what a clean read holds (no cursor moved past records
that were not stored).

CI runs a reduced set covering create and cursor commit on Jira and record on ServiceNow;
`make crash-full` (SLM_SYNC_CRASH_FULL=1) runs the whole matrix (about three minutes).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import Stream
from connectors.crashpoints import BOUNDARIES
from sync.state import open_store

SLM_SYNC = (sys.executable, "-m", "sync.cli")
SECRETS = {"SLM_SYNC_SERVICENOW__PASSWORD": "crash-pw-1", "SLM_SYNC_JIRA__API_TOKEN": "crash-tok-1"}
SN_AUTH = ("crash-suite", "crash-pw-1")
TARGETS = ("jira", "servicenow")
# The n-th arrival at a boundary where the kill lands mid-work rather than at the very start:
# level 0 holds the cycle ticket only, so "2" means "in the second level, parents recorded".
ARRIVAL = {
    "before_intent": 2,
    "after_intent": 1,
    "after_create": 2,
    "after_record": 2,
    "mid_bulk": 1,
    "between_parent_and_subtasks": 1,
    "mid_cursor_commit": 4,  # page_size 400: inside the paged streams, some cursors committed
    "after_step": 2,  # the second review's chart uploaded, not yet recorded
    "after_upload": 2,  # the second review's chart uploaded, its description not yet updated
    "after_show": 1,  # the first review's description shows its chart, not yet recorded
    "mid_source_state_save": 1,  # the first pull's CMDB state written, not committed
}
CI_CASES = {
    ("jira", "after_create"),
    ("jira", "after_step"),
    ("jira", "after_show"),
    ("servicenow", "after_upload"),
    ("jira", "mid_cursor_commit"),
    ("servicenow", "after_record"),
    ("jira", "mid_source_state_save"),
}
FULL = os.environ.get("SLM_SYNC_CRASH_FULL") == "1"
REVIEWED = 2
# Jira creates at most 50 issues per bulk call, and tickets are applied per review (its unit):
# a RACI matrix with 52 service activities gives one review 52 sub-tasks, two bulk calls.
EXTRA_ACTIVITIES = 48
FINISH_ATTEMPTS = 3
# A killed process's work leases (sync/leases.py) run out before anyone else takes its units;
# a short lease keeps the restart quick. Restarting at once is the last test.
LEASE_SECONDS = 3
# A create a kill left `sending` is in doubt: it is not sent again before its quarantine (here
# max(create_settle_seconds, 2 x read_timeout) + index lag = 4.2 s) has passed.
READ_TIMEOUT = 2
QUARANTINE = max(1, 2 * READ_TIMEOUT) + 0.2


def _cases() -> list[Any]:
    cases = []
    for target in TARGETS:
        for boundary in BOUNDARIES:
            reduced = (target, boundary) not in CI_CASES
            marks = (
                [pytest.mark.skip(reason="full matrix: make crash-full")]
                if reduced and not FULL
                else []
            )
            cases.append(pytest.param(target, boundary, id=f"{target}-{boundary}", marks=marks))
    return cases


@dataclass
class Run:
    """One finished `slm-sync` process."""

    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed


@dataclass
class CrashRig:
    """Writes configs for the served sandbox, runs the CLI and reads back what was written."""

    urls: dict[str, str]
    services: list[str]
    references: dict[tuple[str, int, bool], tuple[set[str], dict[str, set[str]]]] = field(
        default_factory=dict
    )

    def config(
        self,
        home: Path,
        target: str,
        reviewed: int,
        *,
        lease_seconds: float = LEASE_SECONDS,
        wide: bool = False,
    ) -> Path:
        """A settings file: ServiceNow source, `target` as target, `reviewed` services chosen
        (`wide`: a RACI matrix with many service activities, see EXTRA_ACTIVITIES)."""
        jira = (
            f'jira: {{url: "{self.urls["jira"]}", email: crash@example.com, '
            "requests_per_second: 500, index_lag_seconds: 0.2}\n"
            if target == "jira"
            else ""
        )
        home.mkdir(parents=True, exist_ok=True)
        path = home / "slm-sync.yaml"
        path.write_text(
            f'servicenow: {{url: "{self.urls["servicenow"]}", username: crash-suite, '
            "requests_per_second: 500, clock_skew_seconds: 0, page_size: 400}\n"
            + jira
            + f"sync: {{source: servicenow, target: {target}, lease_seconds: {lease_seconds}, "
            f'create_settle_seconds: 1, data_dir: "{home / "data"}"}}\n'
            f"http: {{read_timeout: {READ_TIMEOUT}}}\n"
            f"review:\n  selection: {json.dumps(self.services[:reviewed])}\n"
            + (f'  raci_file: "{_wide_raci(home)}"\n' if wide else "")
            + "  roles:\n    slm_process_owner: {email: process.owner@example.com, name: PO}\n"
            "logging: {level: WARNING, format: json}\n",
            encoding="utf-8",
        )
        return path

    def run(self, config: Path, *args: str, crash_at: str | None = None, hooks: bool = True) -> Run:
        """`slm-sync <args> --config <config> --json`, armed to die at `crash_at` if given
        (with `hooks=False` the crash point is named but the test hooks stay disabled)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_SYNC_CRASH")}
        env.update(SECRETS)
        if crash_at is not None:
            env["SLM_SYNC_CRASH_AT"] = crash_at
            if hooks:
                env["SLM_SYNC_TEST_HOOKS"] = "1"
        done = subprocess.run(
            [*SLM_SYNC, *args, "--config", str(config), "--json"],
            env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        return Run(done.returncode, done.stdout, done.stderr)

    def reference(
        self, home: Path, target: str, reviewed: int, *, wide: bool = False
    ) -> tuple[set[str], dict[str, set[str]]]:
        """Planned keys and mirror of a clean, uncrashed read (`plan --json` on fresh state)."""
        if (target, reviewed, wide) not in self.references:
            config = self.config(home, target, reviewed, wide=wide)
            # Named but not enabled, the crash hook must not fire (test_crash_hook_is_inert...).
            planned = self.run(config, "plan", crash_at="mid_cursor_commit", hooks=False)
            assert planned.returncode == 0, planned.stderr[-3000:]
            keys = {t["key"] for t in planned.summary()["tickets"]}
            self.references[target, reviewed, wide] = (keys, mirror_keys(home / "data"))
        return self.references[target, reviewed, wide]

    def tickets(self, target: str) -> list[tuple[str, str, str | None]]:
        """(idempotency key, ticket id, parent ticket id or None) of every ticket written."""
        if target == "jira":
            return self._jira_tickets()
        return self._servicenow_tickets()

    def charts(self, target: str) -> dict[str, int]:
        """Attachments per ticket id (Jira issue key / ServiceNow sys_id)."""
        url = self.urls["jira" if target == "jira" else "servicenow"]
        created = requests.get(f"{url}/__sandbox/created", timeout=10).json()
        if target == "jira":
            return {str(t["key"]): len(t["attachments"]) for t in created["tickets"]}
        return dict(Counter(str(a["table_sys_id"]) for a in created["attachments"]))

    def unshown_charts(self, target: str) -> list[str]:
        """Review tickets whose description does not show their one chart (Jira Cloud: media
        with the attachment's content URL; ServiceNow: the `sys_attachment.do` link)."""
        url = self.urls["jira" if target == "jira" else "servicenow"]
        created = requests.get(f"{url}/__sandbox/created", timeout=10).json()
        if target == "jira":
            return [
                str(t["key"])
                for t in created["tickets"]
                if t["attachments"] and not _jira_shows(url, str(t["key"]))
            ]
        unshown = []
        for attachment in created["attachments"]:
            record = attachment["table_sys_id"]
            row = requests.get(
                f"{url}/api/now/table/vtb_task/{record}",
                params={"sysparm_fields": "description"}, auth=SN_AUTH, timeout=10,
            ).json()["result"]  # fmt: skip
            if f"sys_attachment.do?sys_id={attachment['sys_id']}" not in row["description"]:
                unshown.append(record)
        return unshown

    def _jira_tickets(self) -> list[tuple[str, str, str | None]]:
        created = requests.get(f"{self.urls['jira']}/__sandbox/created", timeout=10).json()
        found = []
        for ticket in created["tickets"]:
            keys = [label for label in ticket["labels"] if label.startswith("slm:")]
            assert len(keys) == 1, f"{ticket['key']} carries {len(keys)} idempotency keys"
            found.append((keys[0], str(ticket["key"]), ticket["parent"]))
        return found

    def _servicenow_tickets(self) -> list[tuple[str, str, str | None]]:
        rows = requests.get(
            f"{self.urls['servicenow']}/api/now/table/vtb_task",
            params={
                "sysparm_query": "correlation_display=slm-sync",
                "sysparm_fields": "sys_id,correlation_id,parent",
                "sysparm_limit": "10000",
                "sysparm_exclude_reference_link": "true",
            },
            auth=SN_AUTH,
            timeout=10,
        ).json()["result"]
        return [(r["correlation_id"], r["sys_id"], r["parent"] or None) for r in rows]


def _jira_shows(url: str, key: str) -> bool:
    fields = requests.get(
        f"{url}/rest/api/3/issue/{key}",
        params={"fields": "description,attachment"}, auth=("crash@example.com", "crash-tok-1"),
        timeout=10,
    ).json()["fields"]  # fmt: skip
    ids = [a["id"] for a in fields["attachment"]]
    return len(ids) == 1 and f"/rest/api/3/attachment/content/{ids[0]}" in json.dumps(
        fields["description"]
    )


def _wide_raci(home: Path) -> Path:
    """The seed RACI matrix plus EXTRA_ACTIVITIES service activities, written under `home`."""
    seed = resources.files("config").joinpath("raci.yaml").read_text(encoding="utf-8")
    extra = "".join(
        f"\n  - id: follow_up_{n:02d}\n    name: Follow-up action {n}\n    scope: service\n"
        "    raci:\n      slm_process_owner: A\n      service_level_manager: R\n"
        for n in range(1, EXTRA_ACTIVITIES + 1)
    )
    path = home / "raci-wide.yaml"
    path.write_text(seed.rstrip("\n") + "\n" + extra, encoding="utf-8")
    return path


def mirror_keys(data_dir: Path) -> dict[str, set[str]]:
    """Keys of the mirrored source records per stream, from the state database."""
    store = open_store(f"sqlite:///{data_dir / 'state.db'}")
    try:
        return {stream.value: {r.key for r in store.mirrored(stream.value)} for stream in Stream}
    finally:
        store.close()


@pytest.fixture(scope="module")
def rig(served_sandbox: Any) -> Iterator[CrashRig]:
    """The crash rig on this module's sandbox, with the seeded business services' keys."""
    services = requests.get(
        f"{served_sandbox.servicenow}/api/now/table/cmdb_ci_service",
        params={"sysparm_fields": "sys_id", "sysparm_query": "sys_class_name=cmdb_ci_service"},
        auth=SN_AUTH,
        timeout=10,
    ).json()["result"]
    assert len(services) >= REVIEWED
    yield CrashRig(served_sandbox.urls, [s["sys_id"] for s in services])


@pytest.fixture
def clean_sandbox(served_sandbox: Any) -> Any:
    """The module's sandbox with no ticket written yet."""
    served_sandbox.reset()
    return served_sandbox


def _wait_out_leases(data_dir: Path) -> None:
    """Sleep until the killed process's work leases have run out (as a new replica would)."""
    with sqlite3.connect(data_dir / "state.db") as db:
        try:
            row = db.execute("SELECT max(expires_at) FROM leases WHERE holder != ''").fetchone()
        except sqlite3.OperationalError:  # a state store without leases: nothing to wait for
            return
    if row and row[0]:
        time.sleep(max(0.0, min(float(row[0]) - time.time(), LEASE_SECONDS)) + 0.05)


def _finish(rig: CrashRig, config: Path) -> list[Run]:
    """Unarmed runs until one succeeds: a sub-task whose parent was lost waits one run, and a
    create in doubt its quarantine."""
    runs = []
    for _ in range(FINISH_ATTEMPTS):
        runs.append(rig.run(config, "sync", "--once"))
        if runs[-1].returncode == 0:
            break
        if runs[-1].summary().get("in_doubt"):
            time.sleep(QUARANTINE)  # the killed run's creates in doubt wait out their quarantine
    return runs


@pytest.mark.parametrize(("target", "boundary"), _cases())
def test_kill_at_a_write_boundary_then_restart_leaves_one_ticket_per_key(
    rig: CrashRig, clean_sandbox: Any, tmp_path: Path, target: str, boundary: str
) -> None:
    """Killed by SIGKILL at the boundary, restarted unarmed: every planned ticket exists exactly
    once, sub-tasks sit under their own parent, and the mirror equals a clean read."""
    wide = (target, boundary) == ("jira", "mid_bulk")
    reviewed = 1 if wide else REVIEWED
    planned, clean_mirror = rig.reference(tmp_path / "reference", target, reviewed, wide=wide)
    home = tmp_path / "crashed"
    config = rig.config(home, target, reviewed, wide=wide)
    crashed = rig.run(config, "sync", "--once", crash_at=f"{boundary}@{ARRIVAL[boundary]}")
    assert crashed.returncode == -signal.SIGKILL, (
        f"no kill at {boundary} (exit {crashed.returncode}): {crashed.stderr[-2000:]}"
    )
    if boundary == "mid_cursor_commit":  # the kill really cut the pull short
        assert mirror_keys(home / "data") != clean_mirror
    _wait_out_leases(home / "data")
    runs = _finish(rig, config)
    assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    tickets = rig.tickets(target)
    per_key = Counter(key for key, _, _ in tickets)
    assert {k: n for k, n in per_key.items() if n > 1} == {}, "duplicate tickets"
    assert set(per_key) == planned
    _assert_children_under_their_parents(tickets)
    assert mirror_keys(home / "data") == clean_mirror
    assert runs[-1].summary()["failed"] == 0
    charts = rig.charts(target)
    assert {key: charts.get(ticket, 0) for key, ticket, _ in tickets} == {
        key: int(key.endswith(":review")) for key, _, _ in tickets
    }, "every review ticket carries its chart exactly once"
    assert rig.unshown_charts(target) == [], "and its description shows that chart"


def _assert_children_under_their_parents(tickets: list[tuple[str, str, str | None]]) -> None:
    """A ticket with a parent hangs under the ticket of its parent key (`slm:<c>:<s>:<act>`
    under `slm:<c>:<s>:review`, `slm:<c>:cycle:<act>` under `slm:<c>:cycle`)."""
    key_of = {ticket: key for key, ticket, _ in tickets}
    for key, ticket, parent in tickets:
        if parent is None:
            continue
        parent_key = key_of.get(parent)
        assert parent_key is not None, f"{ticket} ({key}) hangs under {parent}, not one of ours"
        # slm:<c>:<s>:<activity>[:<part>] under slm:<c>:<s>:review; slm:<c>:cycle:<act> under
        # slm:<c>:cycle
        owner = parent_key.removesuffix(":review")
        assert key.startswith(owner + ":"), f"{key} is under {parent_key}"


def test_crash_hook_is_inert_unless_test_hooks_are_enabled(
    rig: CrashRig, clean_sandbox: Any, tmp_path: Path
) -> None:
    """SLM_SYNC_CRASH_AT alone (without SLM_SYNC_TEST_HOOKS=1) does nothing: the reference
    `plan` run, which commits cursors, completes and plans tickets."""
    planned, mirror = rig.reference(tmp_path / "reference", "servicenow", REVIEWED)
    assert planned and mirror[Stream.SLA_RECORDS.value]


def test_restart_right_after_a_kill_mid_pull_reads_everything_before_writing(
    rig: CrashRig, clean_sandbox: Any, tmp_path: Path
) -> None:
    """The daemon killed mid-pull and restarted at once (default 300 s lease) takes over the dead
    process's leases instead of waiting, and does not build review packs from a half-read
    mirror: the finished run's mirror equals a clean read."""
    _, clean_mirror = rig.reference(tmp_path / "reference", "servicenow", REVIEWED)
    home = tmp_path / "crashed"
    config = rig.config(home, "servicenow", REVIEWED, lease_seconds=300)
    crashed = rig.run(
        config, "sync", "--once", crash_at=f"mid_cursor_commit@{ARRIVAL['mid_cursor_commit']}"
    )
    assert crashed.returncode == -signal.SIGKILL
    restarted = rig.run(config, "sync", "--once")
    assert restarted.returncode == 0 and mirror_keys(home / "data") == clean_mirror


KILL_LOOP = (
    "after_step@1",
    "after_create@2",
    "after_record@3",
    "after_step@2",
    "mid_bulk@1",
    "after_intent@4",
    "after_step@3",
)


@pytest.mark.parametrize("target", TARGETS)
def test_a_kill_loop_leaves_one_ticket_per_key_and_every_chart_once(
    rig: CrashRig, clean_sandbox: Any, tmp_path: Path, target: str
) -> None:
    """Killed again and again at different write boundaries (each restart picking up where the
    last one died, creates in doubt included), then left to finish: one ticket per planned key
    and one chart per review ticket, never two."""
    planned, _ = rig.reference(tmp_path / "reference", target, REVIEWED)
    home = tmp_path / "looped"
    config = rig.config(home, target, REVIEWED)
    for crash_at in KILL_LOOP:
        run = rig.run(config, "sync", "--once", crash_at=crash_at)
        assert run.returncode in (-signal.SIGKILL, 0, 1), run.stderr[-2000:]
        _wait_out_leases(home / "data")
    time.sleep(QUARANTINE)
    runs = _finish(rig, config)
    assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    tickets = rig.tickets(target)
    per_key = Counter(key for key, _, _ in tickets)
    assert {k: n for k, n in per_key.items() if n > 1} == {}, "duplicate tickets"
    assert set(per_key) == planned
    charts = rig.charts(target)
    assert {key: charts.get(ticket, 0) for key, ticket, _ in tickets} == {
        key: int(key.endswith(":review")) for key, _, _ in tickets
    }
