"""Bad input: broken configuration exits 2 with a precise message; hostile records are harmless.

Configuration mistakes are checked through the real command line (`slm-sync` in a subprocess):
exit code 2, a message naming the file, line and key, and never a traceback. Hostile records
(metacharacters of JQL and encoded queries, HTML / ADF / wiki markup, control characters, bytes
that are not UTF-8, a 1 MB description) are inserted into the ServiceNow stand-in and one sync
runs in-process with a spy on every HTTP request: the run completes, the other services' tickets
are exactly what a clean run plans, the stored ADF holds the names as text, and no query sent to
either tool contains the hostile text.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors import set_testing
from sandbox import Sandbox
from sync.demo import demo_settings
from sync.engine import Engine, RunResult
from sync.state import open_store

pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font:UserWarning")

SLM_SYNC = str(Path(sys.executable).with_name("slm-sync"))
ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "SLM_SYNC_SERVICENOW__PASSWORD": "sn-bad-input-pw",
    "SLM_SYNC_JIRA__API_TOKEN": "jt-12345",
}

# --- configuration mistakes, through the command line -------------------------------------------


@pytest.fixture(scope="module")
def site() -> Iterator[Sandbox]:
    """A small sandbox the configurations point at (only the broken-mapping case reaches it)."""
    running = Sandbox(seed=5, services=3, sla_records=200, index_lag_ms=0).start()
    yield running
    running.stop()


def _base_yaml(site: Sandbox, data_dir: Path) -> str:
    return (
        f"servicenow:\n  url: {site.servicenow_url}\n  username: slm\n"
        f"  requests_per_second: 500\n"
        f"jira:\n  url: {site.jira_url}\n  email: slm@example.com\n  requests_per_second: 500\n"
        f"sync:\n  data_dir: {data_dir}\n"
    )


@dataclass(frozen=True)
class Mistake:
    """A broken configuration: extra YAML (or a replacement), files beside it, what to expect."""

    name: str
    yaml: Callable[[str, Path], str]  # (base YAML, directory) -> the settings file's text
    expected: Callable[[Path], list[str]]  # directory -> fragments the error message must hold
    env: dict[str, str | None] | None = None


def _raci(directory: Path, old: str, new: str) -> Path:
    text = (ROOT / "config" / "raci.yaml").read_text(encoding="utf-8")
    assert old in text
    path = directory / "raci.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


BROKEN_MAPPING = """\
version: 1
system: servicenow
entities:
  sla_record:
    id: sys_id
    fields:
      key: {source: "sys_id[", transform: no_such_transform}
"""

MISTAKES = [
    Mistake(
        "broken_yaml",
        lambda base, d: base + "review:\n  selection: [abc\n",
        lambda d: [f"{d / 'slm-sync.yaml'}:", "invalid YAML"],
    ),
    Mistake(
        "unknown_key",
        lambda base, d: base + "  intervall_seconds: 60\n",
        lambda d: [f"{d / 'slm-sync.yaml'}:11", "unknown key 'sync.intervall_seconds'"],
    ),
    Mistake(
        "wrong_type",
        lambda base, d: base + "  interval_seconds: every hour\n",
        lambda d: [f"{d / 'slm-sync.yaml'}:11", "sync.interval_seconds", "'every hour'"],
    ),
    Mistake(
        "raci_without_accountable",
        lambda base, d: (
            base
            + "review:\n  raci_file: "
            + f"{_raci(d, 'slm_process_owner: A/C', 'slm_process_owner: C')}\n"
        ),
        lambda d: [f"{d / 'raci.yaml'}:", "needs exactly one A", "Select services"],
    ),
    Mistake(
        "raci_unknown_role",
        lambda base, d: (
            base
            + f"review:\n  raci_file: {_raci(d, 'service_catalog_owner: I', 'catalog_boss: I')}\n"
        ),
        lambda d: [f"{d / 'raci.yaml'}:", "catalog_boss"],
    ),
    Mistake(
        "broken_mapping",
        lambda base, d: base.replace(
            "sync:\n", f"sync:\n  mapping_file: {_write(d / 'map.yaml', BROKEN_MAPPING)}\n"
        ),
        lambda d: [f"{d / 'map.yaml'}:7", "no_such_transform", "invalid JMESPath"],
    ),
    Mistake(
        "missing_secret",
        lambda base, d: base,
        lambda d: [
            "jira.api_token is missing",
            "SLM_SYNC_JIRA__API_TOKEN",
            "slm_sync_jira__api_token",
        ],
        env={"SLM_SYNC_JIRA__API_TOKEN": None},
    ),
]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _env(tmp_path: Path, changes: dict[str, str | None] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_SYNC_")}
    env.update(SECRETS, SLM_SYNC_SECRETS_DIR=str(tmp_path / "no-secrets"), NO_COLOR="1")
    env["COLUMNS"] = "400"  # no wrapping inside file paths
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run_all(commands: Iterable[list[str]], env: dict[str, str]) -> list[tuple[int, str]]:
    """Start every command at once (they are independent), then collect (exit code, output)."""
    started = [
        subprocess.Popen(
            [SLM_SYNC, *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        for command in commands
    ]
    return [(p.wait(timeout=120), p.stdout.read() if p.stdout else "") for p in started]


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_configuration_mistakes_exit_2_with_a_precise_message(
    mistake: Mistake, site: Sandbox, tmp_path: Path
) -> None:
    """check-config, plan and sync --once stop with exit 2, naming file, line and key, without
    a traceback."""
    config = _write(tmp_path / "slm-sync.yaml", mistake.yaml(_base_yaml(site, tmp_path), tmp_path))
    env = _env(tmp_path, mistake.env)
    # check-config opens no state store, so it runs beside plan; sync would share plan's store.
    commands = [["check-config", "--config", str(config)], ["plan", "--config", str(config)]]
    outcomes = _run_all(commands, env)
    commands.append(["sync", "--once", "--config", str(config)])
    outcomes += _run_all(commands[-1:], env)
    for command, (code, output) in zip(commands, outcomes, strict=True):
        assert code == 2, (command, output)
        assert "Traceback" not in output, output
        assert "configuration error" in output
        flat = " ".join(output.split())
        for fragment in mistake.expected(tmp_path):
            assert fragment in flat, (command, fragment, output)


# --- hostile records, through one in-process sync -----------------------------------------------

NOT_UTF8_MARK = "@@not-utf8@@"
NOT_UTF8_BYTES = b"caf\xe9 \xff\xfe"  # Latin-1 and stray bytes where UTF-8 is promised
HOSTILE = {
    "query_metacharacters": "Pay\" OR project = OPS ' \\ ^ORDERBYname^NQname=x ORDER BY key",
    "markup": '<script>alert(1)</script> {"type":"doc","version":1,"content":[]} '
    "[click|javascript:alert(1)] *bold* {color:red}x{color} <img src=x onerror=alert(1)>",
    "control_characters": "Ctl\x00\x07\x1b[31mred\x7f \u202eevil\u200b\r\nsecond line\ttab",
    "not_utf8": f"Legacy {NOT_UTF8_MARK} system",
    "long_name": "Long " + "name " * 800,
    "console_markup": "Payroll [EU] [bold]loud[/bold] [/closing] [link=https://x.invalid]l[/link]",
}
HUGE = "D" * 1_000_000  # a 1 MB description on every hostile service (a field we do not read)
INJECTED = ("ORDERBYname", "project = OPS", "<script>", "javascript:", "onerror", "ORDER BY key")


class NotUtf8Middleware:
    """Wraps the ServiceNow stand-in: a marker in a response body becomes bytes invalid in UTF-8."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        body = body.replace(NOT_UTF8_MARK.encode(), NOT_UTF8_BYTES)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


@dataclass
class Sent:
    """One request the connectors sent, and the size of its answer."""

    method: str
    url: str
    body: bytes
    answer_bytes: int


@dataclass
class HostileRun:
    site: Sandbox
    planned_clean: RunResult
    result: RunResult
    hostile_keys: dict[str, str]
    normal_keys: list[str]
    sent: list[Sent]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    """Plan on a clean estate, add hostile services, sync once with every request recorded."""
    set_testing(True)
    running = Sandbox(seed=11, services=5, sla_records=500, index_lag_ms=50)
    running.servicenow_harness = NotUtf8Middleware(running.servicenow_harness)  # type: ignore[assignment]
    running.start()
    sent: list[Sent] = []
    original = requests.Session.send

    def spy(session: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
        response = original(session, request, **kw)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        sent.append(Sent(request.method or "", request.url or "", body, len(response.content)))
        return response

    try:
        with pytest.MonkeyPatch.context() as patch:
            yield _hostile_run(running, tmp_path_factory.mktemp("hostile"), sent, patch, spy)
    finally:
        running.stop()
        set_testing(False)


def _hostile_run(
    running: Sandbox, tmp: Path, sent: list[Sent], patch: pytest.MonkeyPatch, spy: Any
) -> HostileRun:
    normal = [s.sys_id for s in running.estate.services[:2]]
    settings = demo_settings(running, tmp / "clean")
    settings.servicenow.clock_skew_seconds = 0
    settings.review.selection = normal
    store = open_store(settings.sync.resolved_state_url())
    planned = Engine.from_settings(settings, store).run_once(dry_run=True)
    store.close()
    owner = running.estate.services[0].owner
    keys = {
        name: running.servicenow.insert(
            "cmdb_ci_service", name=text, owned_by=owner, description=HUGE,
            busines_criticality="2 - somewhat critical", operational_status="1",
        )["sys_id"]
        for name, text in HOSTILE.items()
    }  # fmt: skip
    settings = demo_settings(running, tmp / "hostile")
    settings.servicenow.clock_skew_seconds = 0
    settings.review.selection = normal + list(keys.values())
    store = open_store(settings.sync.resolved_state_url())
    patch.setattr(requests.Session, "send", spy)
    try:
        result = Engine.from_settings(settings, store).run_once()
    finally:
        patch.undo()
        store.close()
    return HostileRun(running, planned, result, keys, normal, sent)


def _created(site: Sandbox) -> list[dict[str, Any]]:
    tickets: list[dict[str, Any]] = requests.get(
        f"{site.jira_url}/__sandbox/created", timeout=10
    ).json()["tickets"]
    return tickets


def _by_label(tickets: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for ticket in tickets:
        for label in ticket["labels"]:
            if label.startswith("slm:"):
                found.setdefault(label, []).append(ticket)
    return found


def test_the_run_completes_with_every_planned_ticket_once(hostile: HostileRun) -> None:
    """Hostile services do not fail the run: nothing failed, each planned key exists once."""
    counts = hostile.result.summary.as_counts()
    assert counts["failed"] == 0, hostile.result.as_json()["failures"]
    assert counts["created"] == len(hostile.result.tickets)
    by_label = _by_label(_created(hostile.site))
    for spec in hostile.result.tickets:
        assert len(by_label.get(spec.key, [])) == 1, spec.key
    for key in hostile.hostile_keys.values():
        assert any(key in spec.key for spec in hostile.result.tickets), key


def test_other_services_tickets_are_what_a_clean_run_plans(hostile: HostileRun) -> None:
    """The normal services' tickets keep the titles and assignees planned before the attack."""
    clean = {s.key: s for s in hostile.planned_clean.tickets if s.kind.value != "cycle"}
    now = {s.key: s for s in hostile.result.tickets}
    normal_specs = [k for k in clean if any(n in k for n in hostile.normal_keys)]
    # a review, its 4 activities, and one more Participate sub-task per further R person
    assert len(normal_specs) >= 5 * len(hostile.normal_keys)
    for key in normal_specs:
        assert now[key].title == clean[key].title, key
        assert now[key].assignee == clean[key].assignee, key
        assert now[key].body == clean[key].body, key


def _adf_text(node: Any) -> str:
    if isinstance(node, dict):
        own = node.get("text", "") if node.get("type") == "text" else ""
        own = "\n" if node.get("type") == "hardBreak" else own
        return own + "".join(_adf_text(child) for child in node.get("content", []))
    return ""


def _adf_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from _adf_nodes(child)


def _review_ticket(hostile: HostileRun, name: str) -> dict[str, Any]:
    key = f"slm:{hostile.result.build.cycle.id}:{hostile.hostile_keys[name]}:review"
    [ticket] = _by_label(_created(hostile.site))[key]
    return ticket


@pytest.mark.parametrize("name", ["query_metacharacters", "markup", "control_characters"])
def test_the_stored_adf_holds_the_name_as_text(hostile: HostileRun, name: str) -> None:
    """The review pack's ADF is valid and carries the name as plain text, no injected nodes;
    line breaks are hardBreak nodes, and no text node holds a control character (C0, DEL)."""
    ticket = _review_ticket(hostile, name)
    document = ticket["description"]
    assert document["type"] == "doc" and document["version"] == 1
    text = _adf_text(document)
    visible = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", HOSTILE[name].replace("\t", " "))
    expected = " ".join(visible.split())  # line breaks may become spaces
    assert expected in " ".join(text.split()), name
    texts = [n["text"] for n in _adf_nodes(document) if n.get("type") == "text"]
    assert not [t for t in texts if re.search(r"[\x00-\x1f\x7f]", t)], name
    for node in _adf_nodes(document):
        for mark in node.get("marks", []):
            if mark["type"] == "link":
                assert mark["attrs"]["href"].startswith(("http://", "https://")), mark
        if node.get("type") == "mention":
            assert re.fullmatch(r"[0-9a-zA-Z:-]+", node["attrs"]["id"]), node
    assert not any(n.get("type") == "doc" for n in _adf_nodes(document) if n is not document)


def test_summaries_are_one_line_and_fit_jira(hostile: HostileRun) -> None:
    """Summaries from hostile names are one line of at most 255 characters."""
    for name in HOSTILE:
        summary = _review_ticket(hostile, name)["summary"]
        assert len(summary) <= 255, name
        assert "\n" not in summary and "\r" not in summary, name


def test_bytes_that_are_not_utf8_arrive_replaced_not_fatal(hostile: HostileRun) -> None:
    """Invalid UTF-8 from the source becomes replacement characters; the ticket is created."""
    summary = _review_ticket(hostile, "not_utf8")["summary"]
    assert summary.startswith("Service review") and "Legacy caf" in summary
    assert "system" in summary


def test_a_huge_description_is_never_transferred(hostile: HostileRun) -> None:
    """A 1 MB field we do not map is not requested: no answer from ServiceNow comes near 1 MB."""
    servicenow = [s for s in hostile.sent if s.url.startswith(hostile.site.servicenow_url)]
    assert servicenow
    assert max(s.answer_bytes for s in servicenow) < len(HUGE)


def _servicenow_queries(hostile: HostileRun) -> list[str]:
    queries = []
    for sent in hostile.sent:
        if sent.url.startswith(hostile.site.servicenow_url):
            queries += parse_qs(urlsplit(sent.url).query).get("sysparm_query", [])
    return queries


def _jira_jql(hostile: HostileRun) -> list[str]:
    found = []
    for sent in hostile.sent:
        if not sent.url.startswith(hostile.site.jira_url):
            continue
        found += parse_qs(urlsplit(sent.url).query).get("jql", [])
        match = re.search(rb'"jql"\s*:\s*"((?:[^"\\]|\\.)*)"', sent.body)
        if match:
            found.append(match.group(1).decode("unicode_escape"))
    return found


def test_no_query_carries_hostile_text(hostile: HostileRun) -> None:
    """Encoded queries and JQL hold only our own terms: no hostile name reaches a query."""
    queries = _servicenow_queries(hostile)
    jql = _jira_jql(hostile)
    assert queries and jql
    for query in queries + jql:
        for fragment in INJECTED:
            assert fragment not in query, (fragment, query)
    term = re.compile(r"^[a-z_.]+(=|!=|>=|<=|>|<|IN|LIKE|STARTSWITH|ISEMPTY|ISNOTEMPTY)")
    for query in queries:
        for part in query.split("^"):
            if part and not part.startswith(("ORDERBY", "OR", "NQ")):
                assert term.match(part), (part, query)


def test_the_terminal_shows_hostile_names_as_written(
    hostile: HostileRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service name with console markup (`[bold]`, a stray `[/closing]`) is printed as
    written in `sync --once`'s ticket table and the demo's ticket tree: nothing is styled
    away and nothing fails."""
    from rich.console import Console

    from sync.cli import _print_outcomes
    from sync.demo import ticket_tree

    _print_outcomes(hostile.result, title="tickets")
    Console(width=400, highlight=False, soft_wrap=True).print(ticket_tree(hostile.result))
    out = " ".join(capsys.readouterr().out.split())
    for fragment in ("[EU]", "[bold]loud[/bold]", "[/closing]", "[link=https://x.invalid]"):
        assert fragment in out
