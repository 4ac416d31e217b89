"""What the sync benchmarks share: a sandbox in its own process, settings for it, request counts.

The sandbox runs in a child process (`python bench/_harness.py serve ...`) so that its work and
memory are not counted with the sync's. It is `python -m sandbox serve` with one difference: the
estate's name lists are widened first, because the seeded estate draws unique person names from
40 x 36 combinations and loops forever above about 350 services (reported as a sandbox bug);
the benchmark's 1,000 services need more people than that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import requests  # noqa: E402

from config import Settings  # noqa: E402
from sync.logs import configure_logging  # noqa: E402


def quiet() -> None:
    """Warnings and errors only, on stderr: stdout carries the benchmark's JSON."""
    configure_logging(level="WARNING", fmt="json")


@dataclass
class SandboxProcess:
    """A sandbox serving in a child process; stop() ends it."""

    process: subprocess.Popen[str]
    jira_url: str
    servicenow_url: str
    started_s: float

    def knobs(self, **changes: Any) -> None:
        """Change knobs on both stand-ins (latency, rate_limit, ...)."""
        for url in (self.jira_url, self.servicenow_url):
            requests.post(f"{url}/__sandbox/knobs", json=changes, timeout=30).raise_for_status()

    def reset_counts(self) -> None:
        """Forget request counts (and rate windows) on both stand-ins; keep the data."""
        for url in (self.jira_url, self.servicenow_url):
            requests.post(f"{url}/__sandbox/reset", timeout=30).raise_for_status()

    def counts(self) -> dict[str, dict[str, Any]]:
        """Request counts by route per system since the last reset."""
        return {
            "servicenow": requests.get(
                f"{self.servicenow_url}/__sandbox/requests", timeout=30
            ).json(),
            "jira": requests.get(f"{self.jira_url}/__sandbox/requests", timeout=30).json(),
        }

    def cpu_s(self) -> float:
        """CPU seconds the sandbox process has used so far (user + system, every thread)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sandbox(*serve_args: str) -> SandboxProcess:
    """Start the sandbox (arguments as for `python -m sandbox serve`) and wait for its URLs."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_harness.py"), "serve", *serve_args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise RuntimeError(f"the sandbox did not start (exit {process.returncode})")
    urls = json.loads(line)
    return SandboxProcess(
        process, urls["jira"], urls["servicenow"], round(time.perf_counter() - started, 1)
    )


def sandbox_settings(
    site: SandboxProcess, data_dir: Path, *, selection: list[str], rps: float = 1000
) -> Settings:
    """Settings for a sync from the sandbox's ServiceNow into its Jira Cloud, paced at `rps`."""
    today = time.strftime("%m-%d", time.gmtime())
    return Settings.model_validate(
        {
            "servicenow": {
                "url": site.servicenow_url, "username": "bench", "password": "bench-password",
                "requests_per_second": rps, "clock_skew_seconds": 0,
            },
            "jira": {
                "url": site.jira_url, "email": "bench@example.com", "api_token": "bench-token",
                "project": "SLM", "requests_per_second": rps, "index_lag_seconds": 0.2,
            },
            "sync": {"source": "servicenow", "target": "jira", "data_dir": str(data_dir)},
            "review": {
                "cycle": {"frequency": "yearly", "start": today},
                "selection": selection,
                "roles": {"slm_process_owner": {"email": "bob.black@example.com"}},
            },
            "logging": {"level": "WARNING"},
        }
    )  # fmt: skip


def service_keys(site: SandboxProcess, count: int) -> list[str]:
    """The first `count` service sys_ids (by sys_id), read over the Table API."""
    response = requests.get(
        f"{site.servicenow_url}/api/now/table/cmdb_ci_service",
        params={
            "sysparm_query": "sys_class_name=cmdb_ci_service^ORDERBYsys_id",
            "sysparm_fields": "sys_id",
            "sysparm_limit": str(count),
        },
        auth=("bench", "bench-password"),
        timeout=60,
    )
    response.raise_for_status()
    return [row["sys_id"] for row in response.json()["result"]]


# POSTs that only read: Jira's search, ServiceNow's REST Batch API (its items here are GETs).
READING_POSTS = ("/jql", "/batch")


def writes(counts: dict[str, Any]) -> int:
    """POST / PUT / PATCH / DELETE requests, except the POSTs that only read (`READING_POSTS`)."""
    return sum(
        n
        for route, n in counts["by_route"].items()
        if route.split()[0] in ("POST", "PUT", "PATCH", "DELETE")
        and not route.endswith(READING_POSTS)
    )


@dataclass
class TableSpy:
    """Counts the requests this process sends, per (system, method, table or route): a
    ServiceNow batch call is one request (`servicenow POST batch`); the table reads inside it
    are counted apart in `batched` ("GET <table>")."""

    by_target: Counter[str] = field(default_factory=Counter)
    batched: Counter[str] = field(default_factory=Counter)

    def install(self) -> None:
        original = requests.Session.send

        def send(session: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
            target = _target(request.method or "", request.url or "")
            self.by_target[target] += 1
            if target == "servicenow POST batch":
                self.batched.update(_batch_items(request.body))
            return original(session, request, **kw)

        requests.Session.send = send  # type: ignore[method-assign,assignment]


def _target(method: str, url: str) -> str:
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    if path.startswith("api/now/table/"):
        return f"servicenow {method} {path.split('/')[3]}"
    if path == "api/now/v1/batch":
        return f"servicenow {method} batch"
    return f"{'jira' if path.startswith('rest/') else 'other'} {method} /{path}"


def _batch_items(body: Any) -> list[str]:
    """Each item of a batch request's JSON body as "GET <table>"."""
    try:
        items = json.loads(body or b"{}").get("rest_requests") or []
    except (ValueError, AttributeError):
        return []
    return [
        f"{item.get('method')} {_target('', str(item.get('url'))).split()[-1]}" for item in items
    ]


def _serve(argv: list[str]) -> int:
    import sandbox.estate.builder as estate
    from sandbox.estate.names import FIRST_NAMES, LAST_NAMES

    # Widen the name lists so that unique person names never run out (see the module docstring).
    first_names = tuple(f"{n}{s}" for s in ("", "a", "e", "o", "i") for n in FIRST_NAMES)
    last_names = tuple(f"{n}{s}" for s in ("", "-Li", "-Ruiz") for n in LAST_NAMES)
    setattr(estate, "FIRST_NAMES", first_names)  # noqa: B010 (the module does not export it)
    setattr(estate, "LAST_NAMES", last_names)  # noqa: B010
    from sandbox.__main__ import main

    profile_to = os.environ.get("BENCH_SANDBOX_PROFILE")
    if not profile_to:
        code: int = main(argv)
        return code
    # Where does the stand-in's serving time go? cProfile of the whole sandbox process, written
    # when the benchmark stops it (SIGTERM): `python -m pstats <file>`.
    import cProfile

    profiler = cProfile.Profile()

    def stop(signum: int, frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(profile_to)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    profiler.enable()
    code = main(argv)
    profiler.disable()
    profiler.dump_stats(profile_to)
    return code


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"]:
        raise SystemExit("usage: python bench/_harness.py serve [python -m sandbox serve args]")
    raise SystemExit(_serve(sys.argv[1:]))
